"""Knowledge distillation (Hinton et al. 2015): one ``loss`` slot of kind distribution.

The student (``model=``) learns from the teacher's outputs softened at temperature T:
``alpha * CE(student, labels) + (1 - alpha) * T^2 * D(softmax(teacher/T), softmax(student/T))``, where D is
the slot's loss called as torch's KLDivLoss is, ``D(log_softmax(student/T), softmax(teacher/T))`` (the
target as log-probabilities when the loss has ``log_target``). The teacher (``task.teacher_model``) is
loaded from ``task.teacher_ckpt`` or, when that is null, trained first in this run by the classification
recipe and saved to ``<run>/teacher/teacher.pt``; ``task.teacher_cache`` names a file that the runs of a
sweep share, so the teacher is trained once and reused by every later point. With ``task.baseline`` a copy of the student (same
initial weights, same batches) trains on the labels alone, so one run reports all three accuracies.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shutil
from pathlib import Path
from typing import ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

import losses as loss_registry
from losses.base import MIN_TEMPERATURE
from losses.errors import ConfigError
from recipes.base import OptimizerFactory, SchedulerFactory, Task
from recipes.metrics import NegativeLogLikelihood

log = logging.getLogger(__name__)

STAGES = ("val", "test")
MODELS = ("student", "teacher", "baseline")  # metric names: acc (the student), teacher_acc, baseline_acc
MIMICS = ("student", "baseline")  # agreement with the teacher's predictions: agreement, baseline_agreement


class DistillationTask(Task):
    """Train a small student from a frozen teacher; report its accuracy next to the teacher's and the student alone."""

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("distribution",)}

    def __init__(
        self,
        model: nn.Module,
        losses: dict[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        teacher_model: nn.Module | None = None,
        teacher_ckpt: str | None = None,
        teacher_epochs: int | None = None,
        teacher_cache: str | None = None,
        temperature: float = 4.0,
        alpha: float = 0.1,
        baseline: bool = True,
        num_classes: int = 10,
    ) -> None:
        super().__init__(model, losses, optimizer, scheduler)
        if not isinstance(teacher_model, nn.Module):
            raise ConfigError(
                "task.teacher_model: the teacher's architecture is needed, e.g. model@task.teacher_model=convnet "
                f"(got {teacher_model!r})"
            )
        check_number("temperature", temperature, low=MIN_TEMPERATURE)  # T^2 scales the soft term: 1e-30 would zero it
        check_number("alpha", alpha, low=0.0, high=1.0)
        if teacher_epochs is not None and (not isinstance(teacher_epochs, int) or teacher_epochs < 1):
            raise ConfigError(f"task.teacher_epochs must be a positive integer or null (got {teacher_epochs!r})")
        if getattr(losses["loss"], "reduction", "batchmean") == "none":
            raise ConfigError("loss.reduction: distillation needs one number per batch; use batchmean (got 'none')")
        self.save_hyperparameters(ignore=["model", "losses", "optimizer", "scheduler", "teacher_model"])
        self.teacher = teacher_model.requires_grad_(False).eval()
        self.teacher_ckpt, self.teacher_epochs = teacher_ckpt, teacher_epochs
        self.teacher_cache = Path(teacher_cache) if teacher_cache else None
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.baseline = copy.deepcopy(model) if baseline else None  # same initial weights as the student
        self.accuracy = nn.ModuleDict(
            {f"{stage}_{who}": MulticlassAccuracy(num_classes, average="micro") for stage in STAGES for who in MODELS}
        )
        self.agreement = nn.ModuleDict(
            {f"{stage}_{who}": MulticlassAccuracy(num_classes, average="micro") for stage in STAGES for who in MIMICS}
        )
        self.nll = nn.ModuleDict({stage: NegativeLogLikelihood() for stage in STAGES})
        self.num_classes = num_classes

    # ----- the recipe -------------------------------------------------------------------------
    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        student_logits = self.model(images)
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        soft = self.soft_loss(student_logits, teacher_logits)
        hard = F.cross_entropy(student_logits.float(), labels)
        loss = self.alpha * hard + (1 - self.alpha) * soft
        self.log_loss("train", "loss", loss, batch_size=len(labels))
        if self.baseline is None:
            self.log_train({"soft": soft, "hard": hard}, batch_size=len(labels))
            return loss
        baseline_loss = F.cross_entropy(self.baseline(images).float(), labels)  # the student alone, on labels
        self.log_train({"soft": soft, "hard": hard, "baseline_loss": baseline_loss}, batch_size=len(labels))
        return loss + baseline_loss  # disjoint parameters: each model gets only its own gradient

    def soft_loss(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """``T^2 * D(log_softmax(student/T), softmax(teacher/T))``: T^2 keeps the gradients' scale as T changes."""
        t = self.temperature
        log_q = F.log_softmax(student_logits.float() / t, dim=1)
        log_p = F.log_softmax(teacher_logits.float() / t, dim=1)
        target = log_p if getattr(self.losses["loss"], "log_target", False) else log_p.exp()
        return t * t * self.losses["loss"](log_q, target)

    def evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        """Accuracy of the student, the teacher and the student alone; how often each agrees with the teacher."""
        images, labels = batch
        logits = {"student": self.model(images), "teacher": self.teacher(images)}
        if self.baseline is not None:
            logits["baseline"] = self.baseline(images)
        soft = self.soft_loss(logits["student"], logits["teacher"])
        hard = F.cross_entropy(logits["student"].float(), labels)
        self.log_loss(stage, "loss", self.alpha * hard + (1 - self.alpha) * soft, batch_size=len(labels))
        predictions = {who: value.argmax(1) for who, value in logits.items()}
        for who, predicted in predictions.items():
            metric = self.accuracy[f"{stage}_{who}"]
            metric.update(predicted, labels)
            self.log(f"{stage}/{'acc' if who == 'student' else who + '_acc'}", metric, on_epoch=True, prog_bar=stage == "val")
            if who in MIMICS:
                agreement = self.agreement[f"{stage}_{who}"]
                agreement.update(predicted, predictions["teacher"])
                self.log(f"{stage}/{'agreement' if who == 'student' else who + '_agreement'}", agreement, on_epoch=True)
        self.nll[stage].update(logits["student"], labels)
        self.log(f"{stage}/nll", self.nll[stage], on_epoch=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "test")

    def train(self, mode: bool = True) -> DistillationTask:
        """Whoever switches this module to training mode, the frozen teacher stays in eval mode (BN, dropout)."""
        super().train(mode)
        self.teacher.eval()
        return self

    # ----- the teacher ------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Before fitting, load the teacher's checkpoint: a bad one stops the run before anything trains."""
        if stage == "fit" and self.teacher_ckpt:
            self.teacher.load_state_dict(load_teacher_weights(self.teacher_ckpt, self.teacher))
            log.info("teacher: loaded %s", self.teacher_ckpt)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.teacher_restored = True  # a resumed run: the checkpoint holds the teacher already

    def on_fit_start(self) -> None:
        """Without a teacher checkpoint (and not resuming), train the teacher now, after the run's restore step."""
        if self.teacher_ckpt or getattr(self, "teacher_restored", False):
            return
        if self.trainer.world_size > 1:  # each process would train a different teacher
            raise ConfigError(
                "task.teacher_ckpt: with several processes the teacher must come from a checkpoint; train it first "
                "(python train.py task=classification model=convnet) and pass task.teacher_ckpt=.../checkpoints/best.ckpt"
            )
        if self.teacher_cache is not None and self.teacher_cache.is_file():
            self.teacher.load_state_dict(load_teacher_weights(self.teacher_cache, self.teacher))
            log.info("teacher: loaded %s (task.teacher_cache)", self.teacher_cache)
            return
        path = self.train_teacher()
        if self.teacher_cache is not None:
            self.teacher_cache.parent.mkdir(parents=True, exist_ok=True)
            partial = self.teacher_cache.with_name(f".{self.teacher_cache.name}.{os.getpid()}")
            shutil.copyfile(path, partial)
            partial.replace(self.teacher_cache)  # atomic: a parallel job never reads half a file
            log.info("teacher: cached as %s for the next runs", self.teacher_cache)

    def train_teacher(self) -> Path:
        """Fit the teacher with the classification recipe (cross-entropy) on the same data, and save its weights."""
        from recipes.classification import ClassificationTask

        outer = self.trainer
        folder = Path(outer.default_root_dir) / "teacher"
        teacher_task = ClassificationTask(
            self.teacher.requires_grad_(True).train(),  # Lightning keeps each module's mode: BN needs train mode
            {"loss": loss_registry.build("ce")},
            self.optimizer_factory,
            self.scheduler_factory,
            num_classes=self.num_classes,
        )
        device = outer.strategy.root_device
        trainer = L.Trainer(
            accelerator="cpu" if device.type == "cpu" else "gpu",
            devices=1 if device.type == "cpu" else [device.index or 0],
            precision=outer.precision,
            max_epochs=self.teacher_epochs or outer.max_epochs,
            limit_train_batches=outer.limit_train_batches,
            limit_val_batches=outer.limit_val_batches,
            log_every_n_steps=outer.log_every_n_steps,
            logger=L.pytorch.loggers.CSVLogger(folder, name="csv", version=""),
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=folder,
        )
        datamodule = outer.datamodule
        log.info("teacher: no task.teacher_ckpt, training %s for %d epochs", type(self.teacher).__name__, trainer.max_epochs)
        try:
            trainer.fit(teacher_task, datamodule=datamodule)
        finally:
            datamodule.trainer = outer  # the inner fit took the datamodule over
            self.teacher.requires_grad_(False).eval()
            for p in self.teacher.parameters():
                p.grad = None  # the student's optimiser holds these parameters too: leave it nothing to step
        path = folder / "teacher.pt"
        torch.save(self.teacher.state_dict(), path)
        accuracy = float(trainer.callback_metrics.get("val/acc", math.nan))
        log.info("teacher: val/acc %.4f, weights saved to %s (reuse with task.teacher_ckpt=%s)", accuracy, path, path)
        return path


def check_number(name: str, value: object, low: float, high: float | None = None, low_open: bool = False) -> None:
    """A task hyperparameter must be a finite number in its range, else a ConfigError naming it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        bounds = f"> {low:g}" if low_open else f">= {low:g}" if high is None else f"in [{low:g}, {high:g}]"
        raise ConfigError(f"task.{name} must be a number {bounds} (got {value!r})")


def load_teacher_weights(path: str | Path, teacher: nn.Module) -> dict[str, Tensor]:
    """The teacher's state dict from ``path``, read with ``weights_only=True`` (no code runs while loading).

    Takes the ``teacher.pt`` a distillation run saves, a bare state dict, or a Lightning checkpoint of the
    classification recipe (its ``model.`` weights). Every failure is a ConfigError that says what to do.
    """
    path = Path(path)
    fix = "train one with `python train.py task=classification` and pass its checkpoints/best.ckpt, or set task.teacher_ckpt=null"
    if not path.is_file():
        raise ConfigError(f"task.teacher_ckpt: {path} does not exist; {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated files, other formats, pickled objects that weights_only refuses
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"task.teacher_ckpt: {path} is not a weights-only PyTorch checkpoint ({reason[:200]}); {fix}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a Lightning checkpoint
        state = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"task.teacher_ckpt: {path} holds no model weights (a state dict of tensors); {fix}")
    expected = teacher.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        details = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shapes", wrong))
            if keys
        )
        raise ConfigError(
            f"task.teacher_ckpt: the weights in {path} do not fit task.teacher_model ({type(teacher).__name__}) — {details}; "
            "set task.teacher_model to the architecture the teacher was trained with (e.g. model@task.teacher_model=mlp)"
        )
    return state
