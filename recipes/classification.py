"""Image classification: one ``loss`` slot of kind classification; reports accuracy, NLL and ECE."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

from recipes.base import OptimizerFactory, SchedulerFactory, Task
from recipes.metrics import NegativeLogLikelihood


class ClassificationTask(Task):
    """Train a classifier with any classification loss; calibration (ECE, NLL) is reported next to accuracy."""

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("classification",)}

    def __init__(
        self,
        model: nn.Module,
        losses: dict[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 10,
        ece_bins: int = 15,
    ) -> None:
        super().__init__(model, losses, optimizer, scheduler)
        self.save_hyperparameters(ignore=["model", "losses", "optimizer", "scheduler"])

        def metrics(stage: str) -> MetricCollection:
            return MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes, average="micro"),
                    "ece": MulticlassCalibrationError(num_classes, n_bins=ece_bins, norm="l1"),
                },
                prefix=f"{stage}/",
            )

        self.val_metrics, self.test_metrics = metrics("val"), metrics("test")
        self.val_nll, self.test_nll = NegativeLogLikelihood(), NegativeLogLikelihood()

    def setup(self, stage: str) -> None:
        """Losses that weight classes by their frequency (class_balanced with null counts) get them here."""
        wanting = [loss for loss in self.losses.values() if getattr(loss, "counts_from_data", False)]
        if wanting and self.trainer is not None and self.trainer.datamodule is not None:
            counts = self.training_class_counts()
            for loss in wanting:
                loss.set_class_counts(counts)

    def training_class_counts(self) -> Tensor:
        """How many training examples each class has, from the datamodule's training labels."""
        dm = self.trainer.datamodule
        splits = getattr(dm, "splits", None)
        labels = splits["train"][1] if splits else torch.cat([batch[1] for batch in dm.train_dataloader()])
        return torch.bincount(labels.flatten().long().cpu(), minlength=self.hparams.num_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.losses["loss"](logits, labels)
        self.log_loss("train", "loss", loss, batch_size=len(labels))
        return loss

    def evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        """Loss, accuracy, ECE and NLL of one evaluation batch, accumulated over the epoch."""
        images, labels = batch
        logits = self(images)
        self.log_loss(stage, "loss", self.losses["loss"](logits, labels), batch_size=len(labels))
        metrics, nll = (self.val_metrics, self.val_nll) if stage == "val" else (self.test_metrics, self.test_nll)
        metrics.update(logits.float().softmax(1), labels)
        nll.update(logits, labels)
        self.log_dict(metrics, on_epoch=True, prog_bar=stage == "val")
        self.log(f"{stage}/nll", nll, on_epoch=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "test")
