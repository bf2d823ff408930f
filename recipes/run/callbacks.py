"""Callbacks every run can use, configured in ``configs/callbacks/``."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

log = logging.getLogger(__name__)


class FitTimer(L.Callback):
    """Wall-clock seconds of ``fit`` (GPU work included), saved to ``timing.json`` and the loggers."""

    def __init__(self) -> None:
        self.started = 0.0
        self.seconds = 0.0

    def sync(self, module: L.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.sync(module)
        self.started = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.sync(module)
        self.seconds = time.perf_counter() - self.started
        if not trainer.is_global_zero:
            return
        record = {"fit_seconds": self.seconds, "epochs": trainer.current_epoch, "steps": trainer.global_step}
        path = Path(trainer.default_root_dir) / "timing.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))
        for logger in trainer.loggers:
            logger.log_metrics({"time/fit_seconds": self.seconds}, step=trainer.global_step)


def progress_bar(refresh_rate: int = 1) -> ProgressBar:
    """A ``RichProgressBar`` when stdout is a terminal; otherwise (a file, a pipe, SLURM, CI) ``LogProgress``,
    which logs a plain line every ``refresh_rate`` steps instead of redrawing a bar with ``\\r``."""
    if sys.stdout.isatty():
        return RichProgressBar(refresh_rate=refresh_rate)
    return LogProgress(every_n_steps=refresh_rate)


class LogProgress(ProgressBar):
    """Progress as log lines: ``epoch 2/12 step 40/156 train/loss=0.53 (85 it/s)``, and each validation's metrics."""

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        self.every_n_steps = max(1, int(every_n_steps))
        self.enabled = True
        self.started = 0.0
        self.total: float = float("inf")

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def shown(self, trainer: L.Trainer, module: L.LightningModule) -> str:
        metrics = {k: v for k, v in self.get_metrics(trainer, module).items() if k != "v_num" and not k.startswith("val/")}
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())

    def epoch(self, trainer: L.Trainer) -> str:
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        return f"epoch {trainer.current_epoch + 1}{total}"

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.perf_counter()
        self.total = self.total_train_batches  # once per epoch, not per step

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, i: int) -> None:
        done, total = i + 1, self.total
        if not self.enabled or (done % self.every_n_steps and done != total):
            return
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        of = "" if math.isinf(total) else f"/{int(total)}"
        log.info("%s step %d%s %s (%.1f it/s)", self.epoch(trainer), done, of, self.shown(trainer, module), rate)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.enabled and not trainer.sanity_checking:
            val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
            log.info("%s validation %s", self.epoch(trainer), " ".join(f"{k}={v:.4g}" for k, v in sorted(val.items())))


class CheckOptimizedMetric(L.Callback):
    """In a sweep, a job whose ``optimized_metric`` is not logged fails at the end of its first validation, rather
    than after training (``recipes.run.launch.check_optimized_metric``; a ``test/`` metric is checked at the end)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.checked = False

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        from recipes.run.launch import check_optimized_metric

        if self.checked or trainer.sanity_checking or not self.name or self.name.startswith("test/"):
            return
        self.checked = True
        check_optimized_metric(self.name, trainer.callback_metrics)
