"""Test-only callbacks that end a training process the hard way, added with ``+callbacks.crash=...``."""

from __future__ import annotations

import os
import signal
import time

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILL this process at the end of optimiser step ``step`` (before that step's checkpoint is written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class NanOnRank(L.Callback):
    """Make the ``loss`` slot return NaN from training call ``after`` on, on one rank only; ``rank0_delay_s`` makes
    rank 0 that much slower to handle the failure than the others (a loaded machine)."""

    def __init__(self, rank: int = 1, after: int = 2, rank0_delay_s: float = 0.0) -> None:
        self.rank, self.after, self.rank0_delay_s = rank, after, rank0_delay_s

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.is_global_zero:
            time.sleep(self.rank0_delay_s)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.global_rank != self.rank or stage != "fit":
            return
        loss = pl_module.losses["loss"]
        forward, calls = loss.forward, [0]

        def nan_after(*args: object, **kwargs: object):
            value = forward(*args, **kwargs)
            if loss.training:
                calls[0] += 1
                if calls[0] > self.after:
                    return value * float("nan")
            return value

        loss.forward = nan_after


class TermAtStep(L.Callback):
    """Send this process SIGTERM (what a scheduler sends before preemption) at the end of optimiser step ``step``, or
    with ``stage='test'`` at the end of the first test batch; on every rank, or on ``rank`` only."""

    def __init__(self, step: int = 0, stage: str = "train", rank: int | None = None) -> None:
        self.step, self.stage, self.rank, self.sent = step, stage, rank, False

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if self.stage == "train" and trainer.global_step >= self.step and self.rank in (None, trainer.global_rank):
            self.send()

    def on_test_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if self.stage == "test" and self.rank in (None, trainer.global_rank):
            self.send()

    def send(self) -> None:
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)


class RaiseAtFitStart(L.Callback):
    """Raise an exception this project does not expect (a bug), to see how it is reported."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise RuntimeError("a bug in a callback")
