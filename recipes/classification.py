"""Image classification: one ``loss`` slot of kind classification; reports accuracy, NLL, ECE and confidence."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MulticlassRecall,
)

from losses.errors import check, check_integer
from recipes.base import OptimizerFactory, SchedulerFactory, Task, figure_image, per_stage
from recipes.metrics import MeanConfidence, NegativeLogLikelihood, ReliabilityBins

LOG_TEMPERATURE_BOUND = 3.0  # fitted temperatures stay in [e^-3, e^3] ~ [0.05, 20]
MISTAKES_SHOWN = 16  # the test images misclassified with the highest confidence, drawn as a grid


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
    ``tail_classes``: the test recall of that many classes with the fewest training examples, as
    ``test/recall_<class>``, and their mean as ``test/tail_recall`` (what long-tailed recognition is judged on).
    """

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("classification",)}
    gives_class_counts = True  # from the training labels, in ``setup``
    batch = ("images+labels", "rows+labels")  # a table's rows classify alike (data=csv_classes, model=tabular_mlp)
    model_outputs = {"model": "logits"}
    val_metrics = ("loss", "acc", "ece", "conf", "nll")

    def __init__(
        self,
        model: nn.Module,
        losses: dict[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 10,
        ece_bins: int = 15,
        temperature_scaling: bool = False,
        tail_classes: int = 0,
    ) -> None:
        super().__init__(model, losses, optimizer, scheduler)
        check_integer(self.owner(), "tail_classes", tail_classes, low=0)
        check(self.owner(), tail_classes <= num_classes, f"tail_classes must be at most num_classes={num_classes}", tail_classes)

        def calibration() -> dict[str, Metric]:
            return {"ece": MulticlassCalibrationError(num_classes, n_bins=ece_bins, norm="l1"), "conf": MeanConfidence()}

        def metrics(stage: str) -> MetricCollection:
            acc = MulticlassAccuracy(num_classes, average="micro")
            return MetricCollection({"acc": acc, **calibration()}, prefix=f"{stage}/")

        self.metrics, self.nll = per_stage(metrics), per_stage(lambda stage: NegativeLogLikelihood())
        self.temperature = 1.0
        if temperature_scaling:
            self.test_ts_metrics = MetricCollection(calibration(), prefix="test/", postfix="_ts")
            self.test_ts_nll = NegativeLogLikelihood()
        if tail_classes:
            self.test_recall = MulticlassRecall(num_classes, average=None)  # per class: recall of each

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
        metrics, nll = self.metrics[stage], self.nll[stage]
        metrics.update(logits.float().softmax(1), labels)
        nll.update(logits, labels)
        self.log_dict(metrics, on_epoch=True, prog_bar=stage == "val")
        self.log(f"{stage}/nll", nll, on_epoch=True)
        return logits

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        logits = self.evaluate(batch, "test")
        self.collect_for_images(*batch, logits)
        if self.hparams.tail_classes:
            self.test_recall.update(logits.float(), batch[1])
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
        if self.hparams.tail_classes:
            self.log_tail_recall()
        self.log_test_images()

    def log_tail_recall(self) -> None:
        """Test recall of the ``tail_classes`` rarest training classes (ties: the higher class index) and their mean."""
        recall = self.test_recall.compute()
        self.test_recall.reset()
        counts = self.training_class_counts().to(torch.float64)
        order = sorted(range(len(counts)), key=lambda c: (float(counts[c]), -c))  # rarest first
        tail = order[: self.hparams.tail_classes]
        for c in tail:
            self.log(f"test/recall_{c}", recall[c])
        self.log("test/tail_recall", recall[tail].mean())

    # ----- test images: reliability diagram, confusion matrix, confident mistakes ----------------
    def on_test_epoch_start(self) -> None:
        self.test_reliability = ReliabilityBins(self.hparams.ece_bins).to(self.device)
        self.test_confusion = MulticlassConfusionMatrix(self.hparams.num_classes).to(self.device)
        self.test_mistakes: tuple[Tensor, ...] = ()  # (confidence, image, predicted, label), most confident first

    @torch.no_grad()
    def collect_for_images(self, images: Tensor, labels: Tensor, logits: Tensor) -> None:
        """Add a test batch to the reliability bins and the confusion matrix; keep the most confident mistakes."""
        probs = logits.float().softmax(1)
        self.test_reliability.update(probs, labels)
        self.test_confusion.update(probs, labels)
        confidence, predicted = probs.max(1)
        score = torch.where(predicted != labels, confidence, -1.0)  # right answers rank below every mistake
        kept = [score, images.detach(), predicted, labels]
        if self.test_mistakes:
            kept = [torch.cat([old, new]) for old, new in zip(self.test_mistakes, kept)]
        top = kept[0].topk(min(MISTAKES_SHOWN, len(kept[0]))).indices
        self.test_mistakes = tuple(t[top] for t in kept)

    def log_test_images(self) -> None:
        """The reliability diagram (ECE bins), confusion matrix and confident mistakes of the test epoch, as PNGs in
        ``images/`` and on W&B; the numbers behind the first two go next to them as CSV files."""
        count, confidence, accuracy = (t.cpu() for t in self.test_reliability.compute())
        confusion = self.test_confusion.compute().cpu()
        if self.trainer is None or not self.trainer.is_global_zero:
            return
        edges = torch.linspace(0, 1, len(count) + 1, dtype=torch.float64)
        write_csv(
            self.image_path("test/reliability", ".csv"),
            ["low", "high", "count", "confidence", "accuracy"],
            zip(edges[:-1].tolist(), edges[1:].tolist(), count.long().tolist(), confidence.tolist(), accuracy.tolist()),
        )
        write_csv(
            self.image_path("test/confusion_matrix", ".csv"),
            ["true", *map(str, range(len(confusion)))],
            ([c, *row] for c, row in enumerate(confusion.tolist())),
        )
        ece = float((count / count.sum().clamp_min(1) * (accuracy - confidence).abs()).sum())
        self.log_image(
            "test/reliability",
            reliability_image(count, confidence, accuracy),
            caption=f"accuracy vs confidence in {len(count)} bins; ECE {ece:.4f}",
        )
        self.log_image(
            "test/confusion_matrix",
            confusion_image(confusion),
            caption=f"{int(confusion.sum())} test images: rows true class, columns predicted",
        )
        score, images, predicted, labels = self.test_mistakes or (torch.empty(0),) * 4
        wrong = score >= 0
        if wrong.any() and images.ndim == 4:  # images, not table rows (data=csv_classes)
            self.log_image(
                "test/confident_mistakes",
                mistakes_image(images[wrong].cpu(), predicted[wrong].cpu(), labels[wrong].cpu(), score[wrong].cpu()),
                caption="the most confident mistakes: predicted (confidence), true class",
            )

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


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable[object]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def reliability_image(count: Tensor, confidence: Tensor, accuracy: Tensor) -> Tensor:
    """Accuracy per confidence bin against the diagonal of perfect calibration, and how many samples each bin has."""
    plt = pyplot()
    bins = len(count)
    centres = (torch.arange(bins) + 0.5) / bins
    seen = count > 0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4, 5), dpi=100, height_ratios=(3, 1), sharex=True)
    top.bar(centres[seen], accuracy[seen], width=1 / bins, edgecolor="black", label="accuracy")
    top.bar(
        centres[seen],
        (confidence - accuracy)[seen],
        bottom=accuracy[seen],
        width=1 / bins,
        color="red",
        alpha=0.3,
        edgecolor="red",
        label="gap to confidence",
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=1)
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title="reliability (test)")
    top.legend(fontsize=7, loc="upper left")
    bottom.bar(centres, count, width=1 / bins, color="grey", edgecolor="black")
    bottom.set(xlabel="confidence (top-1 probability)", ylabel="samples")
    fig.tight_layout()
    return figure_image(fig)


def confusion_image(confusion: Tensor) -> Tensor:
    """The confusion matrix (rows true class, columns predicted) with its counts written in."""
    plt = pyplot()
    n = len(confusion)
    fig, ax = plt.subplots(figsize=(1.5 + 0.4 * n, 1.2 + 0.4 * n), dpi=100)
    ax.imshow(confusion.numpy(), cmap="Blues")
    high = float(confusion.max()) / 2
    for (i, j), value in zip(torch.cartesian_prod(torch.arange(n), torch.arange(n)).tolist(), confusion.flatten().tolist()):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=6, color="white" if value > high else "black")
    ax.set(xlabel="predicted", ylabel="true", xticks=range(n), yticks=range(n), title="confusion (test)")
    fig.tight_layout()
    return figure_image(fig)


def mistakes_image(images: Tensor, predicted: Tensor, labels: Tensor, confidence: Tensor) -> Tensor:
    """A grid of misclassified images, each titled ``predicted (confidence), true``."""
    plt = pyplot()
    columns = min(4, len(images))
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, p, t, c in zip(axes.flat, images, predicted.tolist(), labels.tolist(), confidence.tolist()):
        shown = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-6)
        ax.imshow(shown.permute(1, 2, 0).squeeze(-1).float().numpy(), cmap="gray" if len(image) == 1 else None)
        ax.set_title(f"{p} ({c:.2f}), true {t}", fontsize=7)
    fig.tight_layout()
    return figure_image(fig)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
