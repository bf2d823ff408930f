"""Object detection: slot ``loss`` (classification, default focal) scores locations, ``box_loss`` (boxes) fits them.

The model is the anchor-free detector of ``recipes/models/detector.py``, or torchvision's FCOS or RetinaNet
(``model=fcos``, ``model=retinanet``: ``recipes/models/detectors.py``), which match anchors to boxes as
torchvision does and score them with these same slots (a model with ``loss_terms`` and ``detect`` does its
own matching and postprocessing; a term of no slot, FCOS's centre-ness, adds with weight 1). Both slot
losses are summed over locations and divided by the number of positive locations, as FCOS and RetinaNet
normalise (the task sets their ``reduction`` to ``sum``). How locations are scored follows the classification loss:

- ``scores: sigmoid`` (auto for losses that declare ``target_format = "binary"``, e.g. ``focal`` and
  ``bce_logits``): K independent sigmoids per location, float 0/1 targets, all zero on background; focal
  is then exactly ``torchvision.ops.sigmoid_focal_loss``.
- ``scores: softmax`` (auto for losses of ``target_format = "indices"``, e.g. ``ce``): a (K + 1)-way softmax
  whose last class is background; the target is a class index per location.

Box losses compare decoded xyxy boxes of the positive locations with their matched boxes, in units of
the stride (IoU losses are scale-free; ``l1`` is then in strides). Reports mAP, mAP@50 and mAP@75
(torchmetrics' MeanAveragePrecision, pycocotools backend) and logs test images with predicted (red) and
true (green) boxes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.detection import MeanAveragePrecision

from losses.base import ClassScores
from losses.errors import check
from recipes.base import OptimizerFactory, SchedulerFactory, Task, per_stage
from recipes.data.layout import IGNORED
from recipes.models.detector import assign, postprocess


def truths(boxes: Tensor, labels: Tensor) -> list[dict[str, Tensor]]:
    """The true objects of each image for mAP: crowd (COCO) and difficult (VOC) ones, held as labels <= IGNORED,
    as torchmetrics' ``iscrowd``, so that detections on them neither count nor miss."""
    found = []
    for b, lab in zip(boxes, labels):
        crowd = lab <= IGNORED
        keep = (lab >= 0) | crowd
        classes = torch.where(crowd, IGNORED - lab, lab)
        found.append({"boxes": b[keep].float(), "labels": classes[keep], "iscrowd": crowd[keep].long()})
    return found


class DetectionTask(Task):
    """Train the anchor-free detector with any classification loss and any box loss; report COCO mAP."""

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("classification",), "box_loss": ("boxes",)}
    slot_reduction = "sum"  # normalised by the number of positive locations instead
    batch = "images+boxes"
    model_outputs = {"model": "detector outputs"}
    val_metrics = ("loss", "box_loss", "map", "map_50", "map_75")

    def __init__(
        self,
        model: nn.Module,
        losses: dict[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 10,
        cls_weight: float = 1.0,
        box_weight: float = 1.0,
        scores: str = "auto",
        radius: float = 1.5,
        score_threshold: float = 0.05,
        nms_iou: float = 0.5,
        max_detections: int = 100,
        image_count: int = 8,
    ) -> None:
        super().__init__(model, losses, optimizer, scheduler)
        owner = self.owner()
        check(owner, scores in ("auto", "sigmoid", "softmax"), "scores must be auto, sigmoid or softmax", scores)
        classes = getattr(model, "num_classes", num_classes)
        check(owner, classes == num_classes, f"num_classes must equal the model's num_classes ({classes})", num_classes)
        self.sigmoid = self.sigmoid_scores(scores, self.losses["loss"])
        for loss in self.losses.values():
            loss.reduction = self.slot_reduction
        self.num_classes, self.cls_weight, self.box_weight, self.radius = num_classes, cls_weight, box_weight, radius
        self.score_threshold, self.nms_iou, self.max_detections = score_threshold, nms_iou, max_detections
        self.image_count = image_count
        self.mean_ap = per_stage(lambda stage: MeanAveragePrecision(box_format="xyxy", backend="pycocotools"))

    @staticmethod
    def sigmoid_scores(scores: str, loss: nn.Module) -> bool:
        """Whether locations get K sigmoids (0/1 targets) rather than a (K + 1)-way softmax (class indices)."""
        return scores == "sigmoid" or (scores == "auto" and getattr(loss, "target_format", "indices") == "binary")

    @classmethod
    def class_scores(cls, slot: str, loss: nn.Module, settings: Mapping[str, Any]) -> ClassScores | None:
        found = super().class_scores(slot, loss, settings)
        if found is None:
            return None
        if cls.sigmoid_scores(cls.setting(settings, "scores"), loss):
            return found._replace(
                target_format="binary", source="task.num_classes sigmoids, 0/1 targets; task.scores=softmax for class indices"
            )
        return ClassScores(found.count + 1, "indices", "task.num_classes + 1: detection's softmax has a background class")

    def forward(self, images: Tensor) -> Any:
        return self.model(images)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        images, boxes, labels = batch[:3]
        terms = self.loss_terms(self(images), boxes, labels)
        extra = sum(value for name, value in terms.items() if name not in self.slots)
        total = self.cls_weight * terms["loss"] + self.box_weight * terms["box_loss"] + extra
        self.log_terms("train", terms, batch_size=len(images))
        self.log_train({"total": total}, batch_size=len(images))
        return total

    # ----- the recipe's parts -----------------------------------------------------------------
    def loss_terms(self, outputs: Any, boxes: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Assign locations to boxes, then both slot losses normalised by the number of positives."""
        if hasattr(self.model, "loss_terms"):  # a torchvision detector: its matching, these slots' losses
            return self.model.loss_terms(outputs, boxes, labels, self.class_loss, self.losses["box_loss"])
        class_logits, ltrb = outputs
        k, stride = self.num_classes, self.model.stride
        locations = self.model.locations(*class_logits.shape[-2:], device=class_logits.device)
        classes, matched = assign(locations, boxes.float(), labels, stride, self.radius, background=k)
        logits = class_logits.flatten(2).transpose(1, 2)  # [B, L, K+1]
        positive = classes < k
        count = positive.sum().clamp_min(1)
        cls_loss = self.class_loss(logits, classes)
        predicted = self.model.decode(ltrb.flatten(2).transpose(1, 2).float(), locations)  # float32 under bf16
        box_loss = self.losses["box_loss"](predicted[positive] / stride, matched[positive] / stride)
        return {"loss": cls_loss / count, "box_loss": box_loss / count}

    def class_loss(self, logits: Tensor, classes: Tensor) -> Tensor:
        """The ``loss`` slot on scores ``[..., K+1]`` and classes ``[...]`` (``K``: background): K sigmoids against
        one-hot rows, or a (K+1)-way softmax against the class index."""
        k = self.num_classes
        if self.sigmoid:
            target = F.one_hot(classes, k + 1)[..., :k].to(logits.dtype)
            return self.losses["loss"](logits[..., :k].reshape(-1, k), target.reshape(-1, k))
        return self.losses["loss"](logits.reshape(-1, k + 1), classes.reshape(-1))

    def class_probabilities(self, logits: Tensor) -> Tensor:
        """Probabilities ``[..., K]`` of the object classes from scores ``[..., K+1]``, as the ``loss`` slot reads them."""
        return logits[..., : self.num_classes].sigmoid() if self.sigmoid else logits.softmax(-1)[..., : self.num_classes]

    def detect(self, outputs: Any) -> list[dict[str, Tensor]]:
        """Scores per (location, class), decoded boxes, threshold and class-wise NMS, per image."""
        if hasattr(self.model, "detect"):
            return self.model.detect(outputs, self.class_probabilities, self.score_threshold, self.nms_iou, self.max_detections)
        class_logits, ltrb = outputs
        probs = self.class_probabilities(class_logits.flatten(2).transpose(1, 2).float())
        locations = self.model.locations(*class_logits.shape[-2:], device=class_logits.device)
        boxes = self.model.decode(ltrb.flatten(2).transpose(1, 2).float(), locations)
        return postprocess(probs, boxes, self.score_threshold, self.nms_iou, self.max_detections)

    # ----- evaluation -------------------------------------------------------------------------
    def evaluate(self, batch: tuple[Tensor, ...], stage: str) -> None:
        images, boxes, labels = batch[:3]
        outputs = self(images)
        self.log_terms(stage, self.loss_terms(outputs, boxes, labels), batch_size=len(images))
        self.mean_ap[stage].update(self.detect(outputs), truths(boxes, labels))

    def log_terms(self, stage: str, terms: dict[str, Tensor], batch_size: int) -> None:
        """Each slot's loss (with its loss's terms), and terms of no slot (FCOS's centre-ness) under their names."""
        for name, value in terms.items():
            if name in self.slots:
                self.log_loss(stage, name, value, batch_size=batch_size)
            elif stage == "train":
                self.log_train({name: value}, batch_size=batch_size)
            else:
                self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)

    def log_map(self, stage: str) -> None:
        metric = self.mean_ap[stage]
        result = metric.compute()
        values = {f"{stage}/{key}": result[key].float() for key in ("map", "map_50", "map_75")}
        self.log_dict(values, prog_bar=stage == "val")
        metric.reset()

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self.evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self.log_map("val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self.evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self.log_map("test")
        self.log_detections("test")

    @torch.no_grad()
    def log_detections(self, stage: str) -> None:
        """A grid of images with predicted boxes (red, with class and score) over the true ones (green)."""
        import torchvision
        from torchvision.utils import draw_bounding_boxes

        if self.image_count <= 0:
            return
        images, boxes, labels = self.examples(stage, self.image_count)[:3]
        detections = self.detect(self(images))
        scale = 2  # drawn at twice the size, so labels stay legible
        drawn = []
        for image, true_boxes, true_labels, found in zip(images, boxes, labels, detections):
            x = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-6)
            x = F.interpolate(x[None], scale_factor=scale, mode="nearest")[0]
            canvas = (x.expand(3, -1, -1) * 255).to(torch.uint8).cpu()
            keep = true_labels >= 0
            if keep.any():
                canvas = draw_bounding_boxes(canvas, true_boxes[keep].cpu() * scale, colors="lime", width=1)
            shown = found["scores"] > 0.3
            names = [f"{int(c)} {s:.2f}" for c, s in zip(found["labels"][shown], found["scores"][shown])]
            if shown.any():
                canvas = draw_bounding_boxes(canvas, found["boxes"][shown].cpu() * scale, labels=names, colors="red", width=1)
            drawn.append(canvas.float() / 255)
        grid = torchvision.utils.make_grid(torch.stack(drawn), nrow=4, padding=2)
        self.log_image(f"{stage}/detections", grid, caption="red: predicted (class score > 0.3), green: true")
        self.log_wandb_boxes(f"{stage}/detections_interactive", images, boxes, labels, detections)

    def log_wandb_boxes(self, key: str, images: Tensor, boxes: Tensor, labels: Tensor, found: list[dict[str, Tensor]]) -> None:
        """The same images on W&B with interactive boxes: every detection with its score (W&B filters by it), and
        the true boxes."""
        classes = {c: str(c) for c in range(self.num_classes)}

        def box_data(xyxy: Tensor, ids: Tensor, scores: Tensor | None = None) -> list[dict]:
            rows = []
            for i, ((x0, y0, x1, y1), c) in enumerate(zip(xyxy.tolist(), ids.tolist())):
                row = {"position": {"minX": x0, "minY": y0, "maxX": x1, "maxY": y1}, "domain": "pixel", "class_id": c}
                if scores is not None:
                    row |= {"box_caption": f"{c} {scores[i]:.2f}", "scores": {"score": float(scores[i])}}
                rows.append(row)
            return rows

        overlays = [
            {
                "predictions": {"box_data": box_data(f["boxes"], f["labels"], f["scores"]), "class_labels": classes},
                "ground_truth": {"box_data": box_data(b[lab >= 0], lab[lab >= 0]), "class_labels": classes},
            }
            for b, lab, f in zip(boxes.float().cpu(), labels.cpu(), ({k: v.cpu() for k, v in f.items()} for f in found))
        ]
        shown = [((x - x.min()) / (x.max() - x.min()).clamp_min(1e-6)).expand(3, -1, -1) for x in images]
        captions = [f"{len(f['boxes'])} detections, {int((lab >= 0).sum())} true" for f, lab in zip(found, labels)]
        self.log_wandb_overlays(key, shown, captions, boxes=overlays)
