"""No recipe calls Lightning's ``log`` from a training step that writes no logs (a GPU host sync, or at least
Python overhead, on every step): values accumulate on the device and reach Lightning every ``log_every_n_steps``."""

from __future__ import annotations

import lightning as L
import pytest

from train import train

EVERY = 4  # trainer.log_every_n_steps: steps 3 and 7 (0-based) write logs, the other six must not call log()
TASKS = {
    "classification": ("model.widths=[8,16]",),
    "regression": ("model.hidden=[16]",),
    "distillation": ("task.teacher_model.widths=[8,16]", "model.hidden=[16]", "task.teacher_epochs=1"),
    "vae": ("model.hidden=[32]", "model.latent_dim=2"),
    "siamese": ("model.widths=[8,16]", "model.num_outputs=16"),
    "simclr": ("model.widths=[8,16]", "task.eval_train_samples=200", "task.probe_steps=5"),
    "detection": (
        "data.size=64", "data.max_scale=1.0", "data.train_size=256", "data.val_size=32", "data.test_size=32",
        "data.batch_size=16", "model.widths=[8,16,32]", "model.head_width=16", "model.head_depth=1",
    ),
    "segmentation": (
        "data.size=64", "data.max_scale=1.0", "data.train_size=256", "data.val_size=32", "data.test_size=32",
        "data.batch_size=16", "model.widths=[8,16]",
    ),
}  # fmt: skip


@pytest.mark.parametrize("task", TASKS)
def test_training_steps_call_log_only_when_logs_are_written(smoke_config, monkeypatch, task):
    calls: list[tuple[int, str]] = []
    original = L.LightningModule.log

    def spy(self, name, *args, **kwargs):
        if self._current_fx_name == "training_step" and getattr(self.trainer, "training", False):
            calls.append((self.trainer.fit_loop.epoch_loop._batches_that_stepped, name))
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(L.LightningModule, "log", spy)
    cfg = smoke_config(
        f"task={task}",
        *TASKS[task],
        "trainer.limit_train_batches=8",
        f"trainer.log_every_n_steps={EVERY}",
        "test=false",
    )
    train(cfg)
    assert calls, "the training steps logged nothing at all"
    steps = sorted({step for step, _ in calls})
    assert all((step + 1) % EVERY == 0 for step in steps), calls
