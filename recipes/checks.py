"""The check that runs on the composed config before any data is loaded or any model is built."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

import losses
from losses.errors import ConfigError
from recipes.base import Task
from recipes.tasks import task_class, task_name, tasks_taking


def build_loss(slot: str, loss_cfg: DictConfig | dict[str, Any]) -> nn.Module:
    """Build the loss a slot's config describes: ``{name: focal, gamma: 2, ...}``."""
    hparams = OmegaConf.to_container(loss_cfg, resolve=True) if isinstance(loss_cfg, DictConfig) else dict(loss_cfg)
    name = hparams.pop("name", None)
    if name is None:
        raise ConfigError(f"{slot}: the loss config has no 'name'; losses: {', '.join(losses.available())}")
    return losses.build(name, **hparams)


def check_slot(task: type[Task], slot: str, loss_cfg: DictConfig | None) -> nn.Module:
    """A slot's loss must exist, be of a kind the slot takes and have valid hyperparameters."""
    kinds = task.slots[slot]
    fitting = [n for kind in kinds for n in losses.available(kind)]
    if loss_cfg is None or "name" not in loss_cfg:
        raise ConfigError(
            f"{slot}: task '{task_name(task)}' needs a loss in slot '{slot}' (kind {' or '.join(kinds)}); "
            f"choose one with {slot}=NAME from: {', '.join(fitting)}"
        )
    name = loss_cfg.name
    kind = losses.kind_of(name)
    if kind not in kinds:
        elsewhere = tasks_taking(kind)
        raise ConfigError(
            f"{slot}={name}: loss '{name}' is of kind '{kind}', but slot '{slot}' of task '{task_name(task)}' "
            f"takes kind {' or '.join(repr(k) for k in kinds)}. Losses that fit: {', '.join(fitting)}. "
            + (f"'{name}' fits task {', '.join(elsewhere)}." if elsewhere else f"No task takes kind '{kind}' yet.")
        )
    return build_loss(slot, loss_cfg)


def check_trainer(cfg: DictConfig) -> None:
    """Refuse hardware the machine lacks before anything starts."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator: '{accelerator}' asked for, but this machine has no CUDA GPU; use trainer=cpu"
        )


def check_config(cfg: DictConfig) -> dict[str, nn.Module]:
    """Check every slot of the configured task and return the built losses, keyed by slot."""
    if "task" not in cfg or "_target_" not in cfg.task:
        raise ConfigError("task: no task chosen; use task=NAME")
    task = task_class(cfg.task._target_)
    check_trainer(cfg)
    return {slot: check_slot(task, slot, cfg.get(slot)) for slot in task.slots}
