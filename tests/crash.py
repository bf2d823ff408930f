"""Test-only callbacks that end a training process the hard way, added with ``+callbacks.crash=...``."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILL this process at the end of optimiser step ``step`` (before that step's checkpoint is written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
