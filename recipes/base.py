"""What every task recipe shares: loss slots, optimiser and schedule from config, logging, images."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from losses.base import ClassScores

OptimizerFactory = Callable[..., Optimizer]
SchedulerFactory = Callable[..., Any]
SHARED_ARGUMENTS = ("model", "losses", "optimizer", "scheduler")  # every task's; saved in the state dict or not at all
STAGES = ("val", "test")


def per_stage(make: Callable[[str], nn.Module], stages: tuple[str, ...] = STAGES) -> nn.ModuleDict:
    """One metric object per evaluation stage, ``make(stage)``, to index with the stage: ``self.metrics[stage]``."""
    return nn.ModuleDict({stage: make(stage) for stage in stages})


class Task(L.LightningModule):
    """A LightningModule whose losses fill named ``slots``, each accepting losses of some kinds.

    Subclasses declare ``slots`` once, at class level; ``train.py`` checks the config against them
    before anything is built, so a loss of the wrong kind never reaches ``training_step``. Their own
    constructor arguments are saved as hyperparameters here, except those named in ``module_arguments``.
    """

    slots: ClassVar[dict[str, tuple[str, ...]]] = {}
    module_arguments: ClassVar[tuple[str, ...]] = ()  # a subclass's arguments that are modules (in the state dict)
    # the reduction the task gives its slot losses itself (detection: "sum"); None: each keeps its own, which must
    # then give the one number per batch a step trains on (not "none")
    slot_reduction: ClassVar[str | None] = None
    # whether the task gives losses that weight classes by the training labels (``counts_from_data``) their counts
    gives_class_counts: ClassVar[bool] = False
    # what it takes, checked by name against the data's `batches` and each model's `outputs` before data loads
    # (the names: recipes/run/combinations.py); None / {}: not checked
    batch: ClassVar[str | tuple[str, ...] | None] = None  # the batch it consumes, e.g. "images+labels" (or several alike)
    model_outputs: ClassVar[dict[str, str]] = {}  # per config key of a model it builds on, the output it needs
    val_metrics: ClassVar[tuple[str, ...]] = ()  # logged at validation as val/<name> whatever the config

    def __init__(
        self,
        model: nn.Module,
        losses: Mapping[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
    ) -> None:
        super().__init__()
        missing = set(self.slots) - set(losses)
        if missing:
            raise ValueError(f"{type(self).__name__} needs losses for slots {sorted(missing)}")
        # Lightning collects the arguments of every __init__ up the call stack: the subclass's too
        self.save_hyperparameters(ignore=[*SHARED_ARGUMENTS, *self.module_arguments])
        self.model = model
        self.losses = nn.ModuleDict(dict(losses))
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self._train_sums: dict[str, tuple[Tensor, int]] = {}  # per name: batch-weighted sum (on the device), samples
        self._step_logs: dict[str, Tensor | float] = {}  # what ``log_step`` writes to the loggers after this step
        self._step_logs_at = 0  # ``global_step`` when ``log_step`` was last called

    @classmethod
    def owner(cls) -> str:
        """``task '<name>'``, the registered name: who this task's setting checks speak for (``losses.errors.check``)."""
        from recipes.run.tasks import task_name  # the registry imports this module

        return f"task '{task_name(cls)}'"

    # ----- what the config must fit (checked before data loads) --------------------------------
    @classmethod
    def setting(cls, settings: Mapping[str, Any], name: str) -> Any:
        """Task setting ``name`` as configured, else its constructor's default (None without one)."""
        if name in settings:
            return settings[name]
        parameter = inspect.signature(cls.__init__).parameters.get(name)
        return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default

    @classmethod
    def class_scores(cls, slot: str, loss: nn.Module, settings: Mapping[str, Any]) -> ClassScores | None:
        """The scores a classification loss in ``slot`` gets per sample: ``task.num_classes`` of them, with
        class-index targets. None for other kinds, or when the task has no number of classes."""
        count = cls.setting(settings, "num_classes")
        if getattr(loss, "kind", "") != "classification" or not isinstance(count, int) or isinstance(count, bool):
            return None
        return ClassScores(count, "indices", "task.num_classes")

    @classmethod
    def validation_metrics(cls, cfg: Any, losses: Mapping[str, nn.Module]) -> list[str]:
        """Every ``val/<name>`` validation logs under this config and these losses, known before data loads
        (``monitor.metric`` must be one): ``val_metrics``, and in subclasses the ones a setting adds."""
        return [f"val/{name}" for name in cls.val_metrics]

    # ----- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizer = self.build_optimizer()
        if self.scheduler_factory is None:
            return optimizer
        # schedules of a handful of steps (smoke tests) degenerate, so give them at least 20
        estimate = self.trainer.estimated_stepping_batches
        steps = max(int(estimate) if math.isfinite(estimate) else self.trainer.max_steps, 20)
        scheduler = self.build_scheduler(optimizer, steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def build_scheduler(self, optimizer: Optimizer, steps: int) -> Any:
        """The configured schedule over ``steps`` optimiser steps (its ``total_steps``/``T_max``/``total_iters``)."""
        func = getattr(self.scheduler_factory, "func", self.scheduler_factory)
        params = inspect.signature(func).parameters
        length = {name: steps for name in ("total_steps", "T_max", "total_iters") if name in params}
        return self.scheduler_factory(optimizer, **length)

    def build_optimizer(self) -> Optimizer:
        """The configured optimiser; on CUDA its fused kernel when it has one and the config is silent."""
        keywords = getattr(self.optimizer_factory, "keywords", {})
        func = getattr(self.optimizer_factory, "func", None)
        if (
            self.device.type == "cuda"
            and func is not None
            and "fused" in inspect.signature(func).parameters
            and "fused" not in keywords
        ):
            return self.optimizer_factory(self.parameters(), fused=True)
        return self.optimizer_factory(self.parameters())

    # ----- logging ----------------------------------------------------------------------------
    def log_loss(self, stage: str, slot: str, value: Tensor, batch_size: int) -> None:
        """Log one slot's loss value and the named terms its loss exposes (e.g. reconstruction, KL).

        Training values accumulate on the device; the loggers get the step values only on the steps
        Lightning writes logs (``log_every_n_steps``, see ``log_train``) and the epoch mean at epoch end. Handing a progress-bar
        value to Lightning every step reads it back to the host every step, which stalls a GPU.
        Under DDP, epoch values are averaged over the processes (``sync_dist``, once per epoch);
        a step value is each process's own.
        """
        values = {slot: value, **{f"{slot}_{t}": v for t, v in getattr(self.losses[slot], "terms", {}).items()}}
        if stage != "train":
            for name, v in values.items():
                self.log(f"{stage}/{name}", v, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)
            return
        self.log_train(values, batch_size)

    def log_train(self, values: dict[str, Tensor], batch_size: int) -> None:
        """Log training values as ``train/<name>`` (on logging steps) and ``train/<name>_epoch`` (batch-weighted mean).

        Each value is summed on the device every step; nothing is read back to the host between logging steps.
        On logging steps ``train/loss`` goes through ``self.log`` (the progress bar and callbacks read it); every
        value goes to the loggers in one call per logger (``log_step``).
        """
        sums = self._train_sums
        for name, v in values.items():
            if name in sums:  # in place: one kernel and no new tensor per value and step
                total, count = sums[name]
                sums[name] = (total.add_(v.detach().float(), alpha=batch_size), count + batch_size)
            else:
                sums[name] = (v.detach().float() * batch_size, batch_size)
        if self.step_logs_due():
            if "loss" in values:  # the progress bar's
                loss = values["loss"]
                self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, logger=False, batch_size=batch_size)
            self.log_step({f"train/{name}": v for name, v in values.items()})

    def log_step(self, values: Mapping[str, Tensor | float]) -> None:
        """Values for the loggers at this training step (call it on ``step_logs_due`` steps), written after the step
        in one ``log_metrics`` call per logger, at the step Lightning's own step logs take.

        Lightning's ``self.log`` costs about 1 ms per value on a logging step; these values skip it, so they are not
        in ``trainer.callback_metrics`` (log through ``self.log`` what a callback monitors). Under DDP rank zero
        writes its own values, as Lightning does for a step value without ``sync_dist``.
        """
        self._step_logs.update(values)
        trainer = self.attached_trainer()
        self._step_logs_at = trainer.global_step if trainer is not None else 0  # optimiser steps before this batch

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Write this step's ``log_step`` values (subclasses call ``super()``)."""
        if self._step_logs:
            self.write_step_logs()

    def write_step_logs(self) -> None:
        """The values of ``log_step`` to every logger: one host read for all of them, one call per logger."""
        values, self._step_logs = self._step_logs, {}
        trainer = self.attached_trainer()
        step = self._step_logs_at  # with one optimiser, the step Lightning's own step logs take (public counters only)
        if trainer is None or not trainer.loggers or not trainer.is_global_zero or trainer.global_step == step:
            return  # no optimiser step in this batch (it accumulates): Lightning writes the values of the batch that steps
        names = [k for k, v in values.items() if isinstance(v, Tensor)]
        read = torch.stack([values[k].detach().float().reshape(()) for k in names]).tolist() if names else []
        read_back = dict(zip(names, read, strict=True))
        metrics = {k: read_back[k] if k in read_back else float(v) for k, v in values.items()}
        metrics["epoch"] = trainer.current_epoch  # as Lightning's logger connector adds to its step rows
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
            logger.save()

    def step_logs_due(self) -> bool:
        """Whether Lightning writes step logs after this training step: every ``log_every_n_steps`` optimiser steps.

        Lightning's own rule, from public counters: with one optimiser, ``global_step`` (the optimiser steps
        taken before this one) counts the batches that stepped, and a stopping run writes its last step too.
        """
        trainer = self.attached_trainer()
        if trainer is None or not trainer.training:
            return True
        if trainer.log_every_n_steps == 0:
            return False
        return (trainer.global_step + 1) % trainer.log_every_n_steps == 0 or trainer.should_stop

    def attached_trainer(self) -> L.Trainer | None:
        """The Trainer this task is attached to, or None (Lightning's ``self.trainer`` raises when there is none)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def on_train_epoch_end(self) -> None:
        """Log the epoch means of the accumulated training losses (subclasses call ``super()``)."""
        for name, (total, count) in self._train_sums.items():
            self.log(f"train/{name}_epoch", total / max(count, 1), on_step=False, on_epoch=True, sync_dist=True)
        self._train_sums = {}

    def log_image(self, key: str, image: Tensor, caption: str | None = None) -> Path | None:
        """Save an image ``[C,H,W]`` (values in [0,1]) to the run folder and send it to W&B if present."""
        import torchvision

        trainer = self.attached_trainer()
        if trainer is None or not trainer.is_global_zero:
            return None
        path = self.image_path(key, ".png")
        torchvision.utils.save_image(image.detach().float().cpu(), path)
        for logger in self.wandb_loggers():
            logger.log_image(key=key, images=[str(path)], **({"caption": [caption]} if caption else {}))
        return path

    def log_wandb_overlays(
        self,
        key: str,
        images: list[Tensor],
        captions: list[str],
        boxes: list[dict[str, Any]] | None = None,
        masks: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Send images ``[C,H,W]`` (values in [0,1]) with W&B's interactive ``boxes`` or ``masks`` overlays, one
        dict per image as ``wandb.Image`` takes them; only to a WandbLogger (the PNGs go through ``log_image``)."""
        loggers = self.wandb_loggers() if self.trainer is not None and self.trainer.is_global_zero else []
        if not loggers or not images:
            return False
        pixels = [(image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy() for image in images]
        overlays = {"boxes": boxes, "masks": masks}
        for logger in loggers:
            logger.log_image(key=key, images=pixels, caption=captions, **{k: v for k, v in overlays.items() if v is not None})
        return True

    def wandb_loggers(self) -> list[Any]:
        """The trainer's WandbLoggers (none without W&B)."""
        return [logger for logger in self.trainer.loggers if type(logger).__name__ == "WandbLogger"]

    def image_path(self, key: str, suffix: str) -> Path:
        """Where the run folder keeps what ``key`` shows: ``<run>/images/<key with _ for />.<suffix>``."""
        path = Path(self.trainer.default_root_dir) / "images" / f"{key.replace('/', '_')}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @torch.no_grad()
    def examples(self, stage: str, count: int) -> tuple[Tensor, ...]:
        """The first ``count`` examples of a stage's first batch, normalised as the model sees them."""
        dm = self.trainer.datamodule
        loader = dm.test_dataloader() if stage == "test" else dm.val_dataloader()
        batch = next(iter(loader))
        batch = tuple(t[:count] for t in batch)
        batch = tuple(t.to(self.device) for t in batch)
        return dm.on_after_batch_transfer(batch, 0)


def figure_image(fig: Any) -> Tensor:
    """A drawn matplotlib figure as an image ``[3,H,W]`` in [0, 1] (the figure is closed)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig.canvas.draw()
    rgba = torch.from_numpy(np.asarray(fig.canvas.buffer_rgba()).copy())
    plt.close(fig)
    return rgba[..., :3].permute(2, 0, 1).float() / 255
