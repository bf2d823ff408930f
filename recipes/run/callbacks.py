"""Callbacks every run can use, configured in ``configs/callbacks/``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch


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
