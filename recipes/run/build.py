"""Build a run's components from their config nodes: the one path every ``_target_`` goes through."""

from __future__ import annotations

from typing import Any

import hydra
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.plugins.io import CheckpointIO
from omegaconf import DictConfig, open_dict

from losses.errors import ConfigError
from recipes.run.resume import AtomicCheckpointIO


def instantiate(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, except that a constructor's ConfigError reaches the caller as itself
    (Hydra wraps every constructor error in an InstantiationException with a traceback)."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks``, ``guards`` or ``logger``."""
    if not group:
        return []
    return [instantiate(c) for c in group.values() if isinstance(c, DictConfig) and "_target_" in c]


def callbacks(cfg: DictConfig) -> list[Any]:
    """The configured callbacks, then the always-on guards (``configs/guards/``); no bar when the trainer hides it."""
    built = instantiate_all(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a bar it was told not to show
        built = [c for c in built if not isinstance(c, ProgressBar)]
    return built + instantiate_all(cfg.get("guards"))


def plugins(cfg: DictConfig) -> list[Any]:
    """The trainer's plugins: those configured, and atomic checkpoint writes unless a CheckpointIO is configured."""
    configured = list(instantiate(cfg.trainer.get("plugins")) or [])
    return configured if any(isinstance(p, CheckpointIO) for p in configured) else [*configured, AtomicCheckpointIO()]


def resume_wandb(cfg: DictConfig, checkpoint: dict[str, Any] | None) -> None:
    """A run resumed from a checkpoint logs to the W&B run the checkpoint came from."""
    wandb_id = (checkpoint or {}).get("wandb_id")
    if wandb_id and cfg.get("logger") and "wandb" in cfg.logger:
        with open_dict(cfg):
            cfg.logger.wandb.id = wandb_id
            cfg.logger.wandb.resume = "allow"
