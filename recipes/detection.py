"""Object detection: slot ``loss`` (classification, default focal) scores locations, ``box_loss`` (boxes) fits them.

The model is the anchor-free detector of ``recipes/models/detector.py``. Both slot losses are summed over
locations and divided by the number of positive locations, as FCOS and RetinaNet normalise (the task sets
their ``reduction`` to ``sum``). How locations are scored follows the classification loss:

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
from losses.errors import ConfigError
from recipes.base import OptimizerFactory, SchedulerFactory, Task
from recipes.models.detector import assign, postprocess


class DetectionTask(Task):
    """Train the anchor-free detector with any classification loss and any box loss; report COCO mAP."""

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("classification",), "box_loss": ("boxes",)}
    slot_reduction = "sum"  # normalised by the number of positive locations instead

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
        self.save_hyperparameters(ignore=["model", "losses", "optimizer", "scheduler"])
        if scores not in ("auto", "sigmoid", "softmax"):
            raise ConfigError(f"task.scores: must be auto, sigmoid or softmax (got {scores!r})")
        if getattr(model, "num_classes", num_classes) != num_classes:
            raise ConfigError(f"task.num_classes: {num_classes}, but the model has {model.num_classes} classes")
        self.sigmoid = self.sigmoid_scores(scores, self.losses["loss"])
        for loss in self.losses.values():
            loss.reduction = self.slot_reduction
        self.num_classes, self.cls_weight, self.box_weight, self.radius = num_classes, cls_weight, box_weight, radius
        self.score_threshold, self.nms_iou, self.max_detections = score_threshold, nms_iou, max_detections
        self.image_count = image_count
        self.val_map, self.test_map = (MeanAveragePrecision(box_format="xyxy", backend="pycocotools") for _ in range(2))

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

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.model(images)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        images, boxes, labels = batch[:3]
        class_logits, ltrb = self(images)
        terms = self.loss_terms(class_logits, ltrb, boxes, labels)
        total = self.cls_weight * terms["loss"] + self.box_weight * terms["box_loss"]
        for slot, value in terms.items():
            self.log_loss("train", slot, value, batch_size=len(images))
        self.log_train({"total": total}, batch_size=len(images))
        return total

    # ----- the recipe's parts -----------------------------------------------------------------
    def loss_terms(self, class_logits: Tensor, ltrb: Tensor, boxes: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Assign locations to boxes, then both slot losses normalised by the number of positives."""
        k, stride = self.num_classes, self.model.stride
        locations = self.model.locations(*class_logits.shape[-2:], device=class_logits.device)
        classes, matched = assign(locations, boxes.float(), labels, stride, self.radius, background=k)
        logits = class_logits.flatten(2).transpose(1, 2)  # [B, L, K+1]
        positive = classes < k
        count = positive.sum().clamp_min(1)
        if self.sigmoid:
            target = F.one_hot(classes, k + 1)[..., :k].to(logits.dtype)
            cls_loss = self.losses["loss"](logits[..., :k].reshape(-1, k), target.reshape(-1, k))
        else:
            cls_loss = self.losses["loss"](logits.reshape(-1, k + 1), classes.reshape(-1))
        predicted = self.model.decode(ltrb.flatten(2).transpose(1, 2).float(), locations)  # float32 under bf16
        box_loss = self.losses["box_loss"](predicted[positive] / stride, matched[positive] / stride)
        return {"loss": cls_loss / count, "box_loss": box_loss / count}

    def detect(self, class_logits: Tensor, ltrb: Tensor) -> list[dict[str, Tensor]]:
        """Scores per (location, class), decoded boxes, threshold and class-wise NMS, per image."""
        logits = class_logits.flatten(2).transpose(1, 2).float()
        probs = logits[..., : self.num_classes].sigmoid() if self.sigmoid else logits.softmax(-1)[..., : self.num_classes]
        locations = self.model.locations(*class_logits.shape[-2:], device=class_logits.device)
        boxes = self.model.decode(ltrb.flatten(2).transpose(1, 2).float(), locations)
        return postprocess(probs, boxes, self.score_threshold, self.nms_iou, self.max_detections)

    # ----- evaluation -------------------------------------------------------------------------
    def evaluate(self, batch: tuple[Tensor, ...], stage: str) -> None:
        images, boxes, labels = batch[:3]
        class_logits, ltrb = self(images)
        for slot, value in self.loss_terms(class_logits, ltrb, boxes, labels).items():
            self.log_loss(stage, slot, value, batch_size=len(images))
        truths = [{"boxes": b[lab >= 0].float(), "labels": lab[lab >= 0]} for b, lab in zip(boxes, labels)]
        (self.val_map if stage == "val" else self.test_map).update(self.detect(class_logits, ltrb), truths)

    def log_map(self, stage: str) -> None:
        metric = self.val_map if stage == "val" else self.test_map
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
        detections = self.detect(*self(images))
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
