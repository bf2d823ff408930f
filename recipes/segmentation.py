"""Semantic segmentation: one ``loss`` slot of kind masks (default dice) or classification (per pixel).

A masks loss takes the logits ``[N, C, H, W]`` and the class map ``[N, H, W]`` as they are. A
classification loss sees every pixel as one sample: logits ``[N*H*W, C]`` and targets ``[N*H*W]``, so
``ce``, ``focal`` (softmax), ``bce_logits`` (one-hot) and the rest work unchanged. Reports Dice and IoU
over the object classes (background left out; macro on validation and test, per class on test, named
by the datamodule: ``test/dice_7`` is digit 7) via
torchmetrics, and logs test images next to their predicted and true masks. torchvision's segmenters
(``model=deeplabv3``, ``fcn``: ``recipes/models/segmenters.py``) train their auxiliary head through the same slot,
weighted by ``model.aux_weight``.

``ignore_index`` (the datamodule's, e.g. 255 for ``mask_folder``): void pixels count in no metric and no loss. A
masks loss without an ``ignore_index`` of its own is given the task's; a classification loss sees only the
pixels that are not void (so ``ce`` equals ``F.cross_entropy(..., ignore_index=255)``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.segmentation import DiceScore, MeanIoU

from losses.errors import check, check_integer
from recipes.base import OptimizerFactory, SchedulerFactory, Task, per_stage


class SegmentationTask(Task):
    """Train a per-pixel classifier (the UNet) with a masks loss or a per-pixel classification loss."""

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("masks", "classification")}
    batch = "images+masks"
    model_outputs = {"model": "pixel logits"}
    val_metrics = ("loss", "dice", "iou")

    def __init__(
        self,
        model: nn.Module,
        losses: dict[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 11,
        image_count: int = 8,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(model, losses, optimizer, scheduler)
        check_integer(self.owner(), "num_classes", num_classes, low=2)  # background and at least one class
        self.num_classes, self.image_count, self.ignore_index = num_classes, image_count, ignore_index
        self.share_ignore_index(self.losses["loss"])

        def metrics(stage: str) -> MetricCollection:
            fmt = "index" if ignore_index is None else "one-hot"  # one-hot: void pixels are all-zero rows
            common = {"num_classes": num_classes, "include_background": False, "input_format": fmt}
            found = {"dice": DiceScore(average="macro", **common), "iou": MeanIoU(**common)}
            if stage == "test":
                found |= {"dice_class": DiceScore(average="none", **common), "iou_class": MeanIoU(per_class=True, **common)}
            return MetricCollection(found, prefix=f"{stage}/")

        self.metrics = per_stage(metrics)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        images, masks = self.images_and_masks(batch)
        logits, aux = self.segment(images)
        loss = self.pixel_loss(logits, masks)
        self.log_loss("train", "loss", loss, batch_size=len(images))
        if aux is None:
            return loss
        aux_loss = self.pixel_loss(aux, masks)  # the same slot on the auxiliary head, weighted by the model
        total = loss + self.model.aux_weight * aux_loss
        self.log_train({"aux_loss": aux_loss, "total": total}, batch_size=len(images))
        return total

    # ----- the recipe's parts -----------------------------------------------------------------
    def segment(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """The logits, and those of a torchvision segmenter's auxiliary head in training (``model.segment``; else None)."""
        segment = getattr(self.model, "segment", None)
        return segment(images) if segment is not None else (self(images), None)

    def images_and_masks(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        masks = batch[-1]
        ok = len(batch) >= 2 and masks.ndim == 3
        check(self.owner(), ok, "data must give masks [N, H, W], the last tensor of a batch (use data=canvas)", len(batch))
        return batch[0], masks.long()

    def share_ignore_index(self, loss: nn.Module) -> None:
        """A masks loss ignores the data's void pixels: the task's ``ignore_index`` unless the loss has its own."""
        if self.ignore_index is None or getattr(loss, "kind", None) != "masks" or not hasattr(loss, "ignore_index"):
            return
        if loss.ignore_index is None:
            loss.ignore_index = self.ignore_index
        same = loss.ignore_index == self.ignore_index
        check(self.owner(), same, f"loss.ignore_index must be the data's ignore_index {self.ignore_index}", loss.ignore_index)

    def pixel_loss(self, logits: Tensor, masks: Tensor) -> Tensor:
        """The slot's loss on dense logits (masks kind) or on every pixel as a sample (classification kind)."""
        loss = self.losses["loss"]
        if loss.kind == "masks":
            return loss(logits, masks)
        logits, masks = logits.movedim(1, -1).reshape(-1, logits.shape[1]), masks.reshape(-1)
        if self.ignore_index is not None:
            kept = masks != self.ignore_index
            logits, masks = logits[kept], masks[kept]
        return loss(logits, masks)

    def metric_inputs(self, predicted: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """Class maps as the metrics take them: indices, or one-hot with void pixels all zero."""
        if self.ignore_index is None:
            return predicted, masks
        kept = (masks != self.ignore_index).unsqueeze(1)
        one_hot = lambda m: F.one_hot(m.masked_fill(~kept[:, 0], 0), self.num_classes).movedim(-1, 1) * kept  # noqa: E731
        return one_hot(predicted), one_hot(masks)

    # ----- evaluation -------------------------------------------------------------------------
    def evaluate(self, batch: tuple[Tensor, ...], stage: str) -> None:
        images, masks = self.images_and_masks(batch)
        logits = self(images)
        self.log_loss(stage, "loss", self.pixel_loss(logits, masks), batch_size=len(images))
        self.metrics[stage].update(*self.metric_inputs(logits.argmax(1), masks))

    def log_metrics(self, stage: str) -> None:
        metrics = self.metrics[stage]
        values = {}
        for name, value in metrics.compute().items():
            if not name.endswith("_class"):
                values[name] = value
            else:  # per class, background (class 0) left out
                names = self.class_names()[1:]
                values |= {f"{name.removesuffix('_class')}_{n}": v for n, v in zip(names, value.reshape(-1))}
        self.log_dict(values, prog_bar=stage == "val")
        metrics.reset()

    def class_names(self) -> list[str]:
        """The datamodule's names of the mask classes (``mask_names``), else ``class0``, ``class1``, ..."""
        names = getattr(getattr(self.trainer, "datamodule", None), "mask_names", None)
        return list(names) if names and len(names) == self.num_classes else [f"class{c}" for c in range(self.num_classes)]

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self.evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self.log_metrics("val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self.evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self.log_metrics("test")
        self.log_masks("test")

    @torch.no_grad()
    def log_masks(self, stage: str) -> None:
        """Rows of image | predicted mask | true mask, classes as evenly spaced grey levels."""
        import torchvision

        if self.image_count <= 0:
            return
        batch = self.examples(stage, self.image_count)
        images, masks = self.images_and_masks(batch)
        predicted = self(images).argmax(1)
        shown = (images - images.amin((1, 2, 3), keepdim=True)) / (
            images.amax((1, 2, 3), keepdim=True) - images.amin((1, 2, 3), keepdim=True)
        ).clamp_min(1e-6)
        level = 1.0 / (self.num_classes - 1)
        tiles = [t for row in zip(shown[:, :1], predicted[:, None] * level, masks[:, None] * level) for t in row]
        grid = torchvision.utils.make_grid(torch.stack(tiles).float(), nrow=3, padding=2, pad_value=0.5)
        self.log_image(f"{stage}/masks", grid, caption="image | predicted | true (grey level = class)")
        classes = dict(enumerate(self.class_names()))
        overlays = [
            {
                "predictions": {"mask_data": p.byte().cpu().numpy(), "class_labels": classes},
                "ground_truth": {"mask_data": t.byte().cpu().numpy(), "class_labels": classes},
            }
            for p, t in zip(predicted, masks)
        ]
        captions = [f"pixels right: {float((p == t).float().mean()):.3f}" for p, t in zip(predicted, masks)]
        rgb = shown if shown.shape[1] == 3 else shown[:, :1].expand(-1, 3, -1, -1)
        self.log_wandb_overlays(f"{stage}/masks_interactive", list(rgb), captions, masks=overlays)
