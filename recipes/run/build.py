"""Build a run's components from their config nodes: the one path every ``_target_`` goes through."""

from __future__ import annotations

import logging
from typing import Any

import hydra
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import DeviceStatsMonitor, LearningRateMonitor, ModelSummary, ProgressBar
from lightning.pytorch.plugins.io import CheckpointIO
from omegaconf import DictConfig, open_dict

from losses.errors import ConfigError
from recipes.run.resume import AtomicCheckpointIO

log = logging.getLogger(__name__)


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


def instantiable(group: DictConfig | None) -> dict[str, DictConfig]:
    """The ``_target_`` entries of a config group such as ``callbacks``, ``guards`` or ``logger``, by name."""
    return {name: c for name, c in (group or {}).items() if isinstance(c, DictConfig) and "_target_" in c}


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks``, ``guards`` or ``logger``."""
    return [instantiate(c) for c in instantiable(group).values()]


def callbacks(cfg: DictConfig) -> list[Any]:
    """The configured callbacks, then the always-on guards (``configs/guards/``).

    Callbacks that Lightning refuses in this trainer are left out (with a log line) rather than failing the
    run: a progress bar or model summary the trainer was told not to show, and the monitors that write to a
    logger when there is none (``logger=null``).
    """
    refused: dict[type, str] = {}
    if not cfg.trainer.get("enable_progress_bar", True):
        refused[ProgressBar] = "trainer.enable_progress_bar=false"
    if not cfg.trainer.get("enable_model_summary", True):
        refused[ModelSummary] = "trainer.enable_model_summary=false"
    if not instantiable(cfg.get("logger")):
        refused[LearningRateMonitor] = refused[DeviceStatsMonitor] = "no logger"
    built = []
    for name, node in instantiable(cfg.get("callbacks")).items():
        callback = instantiate(node)
        reason = next((why for kind, why in refused.items() if isinstance(callback, kind)), None)
        if reason:
            log.info("callbacks.%s left out: %s", name, reason)
        else:
            built.append(callback)
    guards = instantiate_all(cfg.get("guards"))
    log.debug("callbacks: %s", ", ".join(type(c).__name__ for c in built + guards))
    return built + guards


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
