"""The task recipes by name (as in ``configs/task/``), imported lazily so a check stays cheap."""

from __future__ import annotations

import importlib
import importlib.util

from losses.errors import ConfigError
from recipes.base import Task

TASKS: dict[str, str] = {
    "classification": "recipes.classification.ClassificationTask",
    "regression": "recipes.regression.RegressionTask",
    "distillation": "recipes.distillation.DistillationTask",
    "vae": "recipes.vae.VAETask",
    "siamese": "recipes.siamese.SiameseTask",
    "simclr": "recipes.simclr.SimCLRTask",
    "detection": "recipes.detection.DetectionTask",
    "segmentation": "recipes.segmentation.SegmentationTask",
}


def task_class(target: str) -> type[Task]:
    """Import ``module.Class`` and check that it is a Task."""
    module_name, _, class_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"task._target_: cannot import {target!r}; tasks are {', '.join(TASKS)}") from None
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"task._target_: {target!r} is not a recipes.base.Task")
    return cls


def task_name(cls: type[Task]) -> str:
    """The registered name of a task class (its dotted path when it is not registered)."""
    path = f"{cls.__module__}.{cls.__qualname__}"
    return next((name for name, target in TASKS.items() if target == path), path)


def tasks_taking(kind: str) -> list[str]:
    """``task.slot`` for every slot of every registered task that accepts losses of ``kind``."""
    found = []
    for name, target in TASKS.items():
        if importlib.util.find_spec(target.rpartition(".")[0]) is None:
            continue  # a recipe not written yet
        for slot, kinds in task_class(target).slots.items():
            if kind in kinds:
                found.append(name if slot == "loss" else f"{name} ({slot}=)")
    return found
