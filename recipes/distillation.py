"""Knowledge distillation (Hinton et al. 2015): one ``loss`` slot of kind distribution.

The student (``model=``) learns from the teacher's outputs softened at temperature T:
``alpha * CE(student, labels) + (1 - alpha) * T^2 * D(softmax(teacher/T), softmax(student/T))``, where D is
the slot's loss called as torch's KLDivLoss is, ``D(log_softmax(student/T), softmax(teacher/T))`` (the
target as log-probabilities when the loss has ``log_target``). The teacher (``task.teacher_model``) is
loaded from ``task.teacher_ckpt`` or, when that is null, trained first by ``train.py`` as a run of the
classification recipe in ``<run>/teacher/`` (``recipes/run/teacher.py``), its weights saved as
``<run>/teacher/teacher.pt``; ``task.teacher_cache`` names a file that the runs of a sweep share, so the
teacher is trained once and reused by every later point. With ``task.baseline`` a copy of the student (same
initial weights, same batches) trains on the labels alone, so one run reports all three accuracies. The
student alone is selected on its own validation accuracy: its weights at its best ``val/baseline_acc`` epoch
are kept (``baseline_best``) and tested, whichever epoch the distilled student's checkpoint comes from.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from losses.base import MIN_TEMPERATURE
from losses.errors import ConfigError, check, check_integer, check_number
from recipes.base import STAGES, OptimizerFactory, SchedulerFactory, Task, per_stage
from recipes.metrics import NegativeLogLikelihood

log = logging.getLogger(__name__)

MODELS = ("student", "teacher", "baseline")  # metric names: acc (the student), teacher_acc, baseline_acc
MIMICS = ("student", "baseline")  # agreement with the teacher's predictions: agreement, baseline_agreement


class DistillationTask(Task):
    """Train a small student from a frozen teacher; report its accuracy next to the teacher's and the student alone."""

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("distribution",)}
    batch = "images+labels"
    model_outputs = {"model": "logits", "task.teacher_model": "logits"}
    val_metrics = ("loss", "acc", "teacher_acc", "agreement", "nll")
    module_arguments: ClassVar[tuple[str, ...]] = ("teacher_model",)

    @classmethod
    def validation_metrics(cls, cfg: Any, losses: Mapping[str, nn.Module]) -> list[str]:
        """Also the student alone's accuracy and agreement with the teacher, with ``task.baseline``."""
        baseline = ["val/baseline_acc", "val/baseline_agreement"] if cfg.task.get("baseline", True) else []
        return [*super().validation_metrics(cfg, losses), *baseline]

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
        owner = self.owner()
        need = "teacher_model must be the teacher's architecture, e.g. model@task.teacher_model=convnet"
        check(owner, isinstance(teacher_model, nn.Module), need, teacher_model)
        check_number(owner, "temperature", temperature, low=MIN_TEMPERATURE)  # T^2 scales the soft term: 1e-30 zeroes it
        check_number(owner, "alpha", alpha, low=0, high=1)
        if teacher_epochs is not None:
            check_integer(owner, "teacher_epochs", teacher_epochs, low=1)
        reduction = getattr(losses["loss"], "reduction", "batchmean")
        check(owner, reduction != "none", "loss.reduction must give one number per batch: use batchmean", reduction)
        self.teacher = teacher_model.requires_grad_(False).eval()
        self.teacher_ckpt, self.teacher_epochs = teacher_ckpt, teacher_epochs
        self.teacher_cache = Path(teacher_cache) if teacher_cache else None
        self.teacher_loaded = False  # from teacher_ckpt at setup, or from a resumed run's checkpoint
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.baseline = copy.deepcopy(model) if baseline else None  # same initial weights as the student
        # the student alone at its own best validation epoch: what test/baseline_* report (its own model selection)
        self.baseline_best = copy.deepcopy(model).requires_grad_(False) if baseline else None
        self.register_buffer("baseline_best_acc", torch.tensor(-1.0))
        self.register_buffer("baseline_best_epoch", torch.tensor(-1))
        self.accuracy = nn.ModuleDict(
            {f"{stage}_{who}": MulticlassAccuracy(num_classes, average="micro") for stage in STAGES for who in MODELS}
        )
        self.agreement = nn.ModuleDict(
            {f"{stage}_{who}": MulticlassAccuracy(num_classes, average="micro") for stage in STAGES for who in MIMICS}
        )
        self.nll = per_stage(lambda stage: NegativeLogLikelihood())
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
        if self.baseline is not None:  # at test, the student alone as it was at its own best validation epoch
            logits["baseline"] = (self.baseline_best if stage == "test" else self.baseline)(images)
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

    def on_validation_epoch_end(self) -> None:
        """Keep the student alone's weights when its own validation accuracy improves (strictly, as ModelCheckpoint)."""
        if self.baseline is None or self.trainer.sanity_checking:
            return
        accuracy = self.accuracy["val_baseline"].compute()
        if accuracy > self.baseline_best_acc:
            self.baseline_best.load_state_dict(self.baseline.state_dict())
            self.baseline_best_acc.fill_(accuracy)
            self.baseline_best_epoch.fill_(self.current_epoch)

    def on_test_epoch_end(self) -> None:
        if self.baseline is not None:  # which epoch the student alone was selected at (-1: never validated)
            self.log("test/baseline_epoch", self.baseline_best_epoch.float())

    def train(self, mode: bool = True) -> DistillationTask:
        """Whoever switches this module to training mode, the frozen teacher stays in eval mode (BN, dropout)."""
        super().train(mode)
        self.teacher.eval()
        return self

    # ----- the teacher ------------------------------------------------------------------------
    def use_teacher(self, path: str | Path) -> None:
        """Take the teacher from ``path`` as if it had been given as ``task.teacher_ckpt`` (``recipes.run.teacher``)."""
        self.teacher_ckpt = self.hparams["teacher_ckpt"] = str(path)

    def setup(self, stage: str) -> None:
        """Before fitting, load the teacher's checkpoint: a bad one stops the run before anything trains."""
        if stage == "fit" and self.teacher_ckpt:
            self.teacher.load_state_dict(load_teacher_weights(self.teacher_ckpt, self.teacher))
            self.teacher_loaded = True
            log.info("teacher: loaded %s", self.teacher_ckpt)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A resumed run: the checkpoint holds the teacher. Testing the distilled student's best checkpoint after
        fitting keeps the student alone's best weights of the whole fit, which may come from a later epoch."""
        self.teacher_loaded = True
        state = checkpoint["state_dict"]
        if self.baseline is None or "baseline_best_acc" not in state:
            return
        if self.baseline_best_acc > state["baseline_best_acc"].to(self.baseline_best_acc.device):
            state.update({f"baseline_best.{k}": v for k, v in self.baseline_best.state_dict().items()})
            state.update(baseline_best_acc=self.baseline_best_acc.clone(), baseline_best_epoch=self.baseline_best_epoch.clone())

    def on_fit_start(self) -> None:
        if not self.teacher_loaded:  # train.py trains one first (recipes/run/teacher.py); a bare Trainer.fit does not
            rank_zero_warn("distillation: no task.teacher_ckpt was loaded; the teacher keeps its initial weights")


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
