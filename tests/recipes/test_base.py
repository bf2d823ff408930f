"""What every task shares (``recipes.base.Task``): hyperparameters saved once, per-stage metrics, the checks' owner."""

from __future__ import annotations

import pytest
import torch
from torchmetrics import MeanMetric

import losses
from losses import ConfigError
from recipes.base import SHARED_ARGUMENTS, Task, per_stage
from recipes.classification import ClassificationTask
from recipes.distillation import DistillationTask
from recipes.models import MLP
from recipes.run.tasks import TASKS, task_class


def test_a_subclass_s_own_arguments_are_its_hyperparameters_and_the_shared_four_are_not():
    task = ClassificationTask(MLP(4, 3, hidden=[]), {"loss": losses.build("ce")}, torch.optim.SGD, num_classes=3, ece_bins=5)
    assert dict(task.hparams) == {"num_classes": 3, "ece_bins": 5, "temperature_scaling": False, "tail_classes": 0}


def test_module_arguments_stay_out_of_the_hyperparameters():
    task = DistillationTask(
        MLP(4, 3, hidden=[]), {"loss": losses.build("kl_div")}, torch.optim.SGD, teacher_model=MLP(4, 3, hidden=[8]), alpha=0.5
    )
    assert "teacher_model" not in task.hparams and not set(SHARED_ARGUMENTS) & set(task.hparams)
    assert task.hparams["alpha"] == 0.5 and task.hparams["temperature"] == 4.0  # given and default values alike
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in task.hparams.values())


def test_a_subclass_of_a_task_adds_its_arguments_to_its_parent_s():
    class Scaled(ClassificationTask):
        def __init__(self, *args, scale: float = 2.0, **kwargs) -> None:
            super().__init__(*args, **kwargs)

    task = Scaled(MLP(4, 3, hidden=[]), {"loss": losses.build("ce")}, torch.optim.SGD, scale=3.0, num_classes=3)
    assert task.hparams["scale"] == 3.0 and task.hparams["num_classes"] == 3


def test_per_stage_gives_each_stage_its_own_metric():
    metrics = per_stage(lambda stage: MeanMetric())
    assert list(metrics) == ["val", "test"]
    metrics["val"].update(torch.tensor(1.0))
    metrics["test"].update(torch.tensor(5.0))
    assert (float(metrics["val"].compute()), float(metrics["test"].compute())) == (1.0, 5.0)


@pytest.mark.parametrize("name", TASKS)
def test_every_task_speaks_for_itself_by_its_registered_name(name):
    cls = task_class(TASKS[name])
    assert issubclass(cls, Task) and cls.owner() == f"task '{name}'"


def test_a_task_setting_error_names_the_task_the_setting_and_the_value():
    with pytest.raises(ConfigError, match=r"^task 'distillation': temperature must be >= 0.0001 \(got -1\)$"):
        DistillationTask(MLP(4, 3), {"loss": losses.build("kl_div")}, torch.optim.SGD, teacher_model=MLP(4, 3), temperature=-1)
