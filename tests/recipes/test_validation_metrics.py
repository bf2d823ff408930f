"""What a task declares it logs at validation (``Task.validation_metrics``, which ``monitor.metric`` is checked
against before data loads) is what a run logs: nothing undeclared, nothing declared and missing."""

from __future__ import annotations

import lightning as L
import pytest

from recipes.run.checks import check_config
from recipes.run.tasks import task_class
from tests.helpers.sizes import TASK_TINY
from train import train

RUNS = {task: (f"task={task}", *overrides) for task, overrides in TASK_TINY.items()} | {
    "regression gaussian_nll": ("task=regression", *TASK_TINY["regression"], "loss=gaussian_nll"),  # + coverage, width
    "siamese triplet": ("task=siamese", *TASK_TINY["siamese"], "loss=triplet"),
}


@pytest.mark.parametrize("run", RUNS)
def test_the_validation_metrics_a_task_declares_are_those_it_logs(smoke_config, monkeypatch, run):
    cfg = smoke_config(*RUNS[run], "test=false", "trainer.limit_train_batches=2")
    task = task_class(cfg.task._target_)
    declared = task.validation_metrics(cfg, check_config(cfg))
    logged: set[str] = set()
    original = L.LightningModule.log

    def spy(self, name, *args, **kwargs):
        if type(self) is task and name.startswith("val/"):  # not a distillation teacher's own run
            logged.add(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(L.LightningModule, "log", spy)
    train(cfg)
    assert sorted(logged) == sorted(declared)
