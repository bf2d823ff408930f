"""No recipe calls Lightning's ``log`` from a training step that writes no logs (a GPU host sync, or at least
Python overhead, on every step): values accumulate on the device and reach Lightning every ``log_every_n_steps``."""

from __future__ import annotations

import lightning as L
import pytest

from tests.helpers.configs import CONFIGS
from tests.helpers.sizes import TASK_TINY
from train import train

EVERY = 4  # trainer.log_every_n_steps: steps 3 and 7 (0-based) write logs, the other six must not call log()
TASKS = sorted(path.stem for path in (CONFIGS / "task").glob("*.yaml"))
# the tiny canvases hold 64 training images, 4 batches of 16: these runs take 8 steps
EIGHT_STEPS = {"detection": ("data.train_size=256",), "segmentation": ("data.train_size=256",)}


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
        *TASK_TINY.get(task, ()),
        *EIGHT_STEPS.get(task, ()),
        "trainer.limit_train_batches=8",
        f"trainer.log_every_n_steps={EVERY}",
        "test=false",
    )
    train(cfg)
    assert calls, "the training steps logged nothing at all"
    steps = sorted({step for step, _ in calls})
    assert all((step + 1) % EVERY == 0 for step in steps), calls


def test_every_tiny_size_names_a_task_config():
    assert set(TASK_TINY) <= set(TASKS), "tests/helpers/sizes.py: TASK_TINY names a task without a configs/task/*.yaml"
