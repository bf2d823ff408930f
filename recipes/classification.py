"""Image classification: one ``loss`` slot of kind classification; reports accuracy, NLL, ECE and confidence."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

from recipes.base import OptimizerFactory, SchedulerFactory, Task
from recipes.metrics import MeanConfidence, NegativeLogLikelihood

LOG_TEMPERATURE_BOUND = 3.0  # fitted temperatures stay in [e^-3, e^3] ~ [0.05, 20]


def fit_temperature(logits: Tensor, labels: Tensor, max_iter: int = 100) -> float:
    """The temperature T minimising the NLL of ``softmax(logits / T)`` (Guo et al. 2017): LBFGS on ``log T``.

    Works in float64 on the CPU, outside any inference mode; T is kept within ``exp(+-LOG_TEMPERATURE_BOUND)``
    (a validation set classified without error has its optimum at T -> 0).
    """
    with torch.inference_mode(False), torch.enable_grad():
        logits = logits.detach().to("cpu", torch.float64, copy=True)
        labels = labels.detach().to("cpu", torch.long, copy=True)
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(logits * torch.exp(-log_t), labels)
            loss.backward()
            return loss

        optimizer.step(closure)
    return float(log_t.detach().clamp(-LOG_TEMPERATURE_BOUND, LOG_TEMPERATURE_BOUND).exp())


class ClassificationTask(Task):
    """Train a classifier with any classification loss; calibration (ECE, NLL, mean confidence) is reported next to accuracy.

    ``temperature_scaling``: at test start, fit one temperature on the validation logits and report the
    test ECE, NLL and confidence of ``softmax(logits / T)`` as ``test/*_ts`` and T as ``test/temperature``.
    """

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("classification",)}
    gives_class_counts = True  # from the training labels, in ``setup``

    def __init__(
        self,
        model: nn.Module,
        losses: dict[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 10,
        ece_bins: int = 15,
        temperature_scaling: bool = False,
    ) -> None:
        super().__init__(model, losses, optimizer, scheduler)
        self.save_hyperparameters(ignore=["model", "losses", "optimizer", "scheduler"])

        def calibration() -> dict[str, Metric]:
            return {"ece": MulticlassCalibrationError(num_classes, n_bins=ece_bins, norm="l1"), "conf": MeanConfidence()}

        def metrics(stage: str) -> MetricCollection:
            acc = MulticlassAccuracy(num_classes, average="micro")
            return MetricCollection({"acc": acc, **calibration()}, prefix=f"{stage}/")

        self.val_metrics, self.test_metrics = metrics("val"), metrics("test")
        self.val_nll, self.test_nll = NegativeLogLikelihood(), NegativeLogLikelihood()
        self.temperature = 1.0
        if temperature_scaling:
            self.test_ts_metrics = MetricCollection(calibration(), prefix="test/", postfix="_ts")
            self.test_ts_nll = NegativeLogLikelihood()

    def setup(self, stage: str) -> None:
        """Losses that weight classes by their frequency (class_balanced with null counts) get them here."""
        wanting = [loss for loss in self.losses.values() if loss.counts_from_data]
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

    def evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        """Loss, accuracy, ECE, confidence and NLL of one evaluation batch, accumulated over the epoch; returns the logits."""
        images, labels = batch
        logits = self(images)
        self.log_loss(stage, "loss", self.losses["loss"](logits, labels), batch_size=len(labels))
        metrics, nll = (self.val_metrics, self.val_nll) if stage == "val" else (self.test_metrics, self.test_nll)
        metrics.update(logits.float().softmax(1), labels)
        nll.update(logits, labels)
        self.log_dict(metrics, on_epoch=True, prog_bar=stage == "val")
        self.log(f"{stage}/nll", nll, on_epoch=True)
        return logits

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        logits = self.evaluate(batch, "test")
        if self.hparams.temperature_scaling:
            labels = batch[1]
            logits = logits.float() / self.temperature
            self.test_ts_metrics.update(logits.softmax(1), labels)
            self.test_ts_nll.update(logits, labels)
            self.log_dict(self.test_ts_metrics, on_epoch=True)
            self.log("test/nll_ts", self.test_ts_nll, on_epoch=True)

    # ----- temperature scaling (Guo et al. 2017) ------------------------------------------------
    def on_test_start(self) -> None:
        """Fit the temperature on the validation split before the test epoch (``temperature_scaling``)."""
        if self.hparams.temperature_scaling:
            self.temperature = fit_temperature(*self.validation_logits())

    def on_test_epoch_end(self) -> None:
        if self.hparams.temperature_scaling:
            self.log("test/temperature", self.temperature)

    @torch.no_grad()
    def validation_logits(self) -> tuple[Tensor, Tensor]:
        """Logits and labels of the whole validation split, from the model in eval mode."""
        dm = self.trainer.datamodule
        if dm is None:
            raise RuntimeError("temperature_scaling needs a datamodule: it fits T on the datamodule's validation split")
        was_training = self.training
        self.eval()
        logits, labels = [], []
        for batch in dm.val_dataloader():
            batch = tuple(t.to(self.device) for t in batch)
            images, target = dm.on_after_batch_transfer(batch, 0)
            logits.append(self(images).float())
            labels.append(target)
        self.train(was_training)
        return torch.cat(logits), torch.cat(labels)
