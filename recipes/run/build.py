"""Build a run's components from their config nodes: the one path every ``_target_`` goes through."""

from __future__ import annotations

import inspect
import logging
import re
from typing import Any

import hydra
from hydra.errors import InstantiationException
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import DeviceStatsMonitor, LearningRateMonitor, ModelSummary, ProgressBar
from lightning.pytorch.plugins.io import CheckpointIO
from omegaconf import DictConfig, open_dict

from losses.errors import ConfigError
from recipes.run.resume import AtomicCheckpointIO, ExactResume, run_settings

log = logging.getLogger(__name__)

# the errors a constructor raises for a value it refuses (torch: ValueError; Lightning: MisconfigurationException)
REFUSALS = (ValueError, TypeError, MisconfigurationException)
# words torch's messages use for an argument, where they differ from its name
SPELLED = {"lr": "learning rate", "eps": "epsilon", "betas": "beta"}


def culprit(setting: str, node: Any, message: str) -> str:
    """``setting.key`` for the key of ``node`` that a constructor's ``message`` names, else ``setting``."""
    if not isinstance(node, DictConfig):
        return setting
    for key in node:
        key = str(key)
        if key.startswith("_"):
            continue
        words = (key, key.replace("_", " "), SPELLED.get(key, key))
        if any(re.search(rf"\b{re.escape(word)}\b", message) for word in words):
            return f"{setting}.{key}"
    return setting


def refused(setting: str, node: Any, err: BaseException) -> ConfigError:
    """A constructor's refusal as one ConfigError naming the config key: ``task.optimizer.lr: AdamW: Invalid ...``."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    target = str(node.get("_target_", "")) if isinstance(node, DictConfig) else ""
    name = target.rpartition(".")[2] or type(err).__name__
    return ConfigError(f"{culprit(setting, node, message)}: {name} refused its settings: {message}")


def instantiate(node: Any, setting: str | None = None, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, except that a constructor's ConfigError reaches the caller as itself, and a value
    the constructor refuses becomes a ConfigError naming ``setting`` (Hydra wraps both in a traceback)."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        if setting is not None and isinstance(err.__cause__, REFUSALS):
            raise refused(setting, node, err.__cause__) from None
        raise


def instantiable(group: DictConfig | None) -> dict[str, DictConfig]:
    """The ``_target_`` entries of a config group such as ``callbacks``, ``guards`` or ``logger``, by name."""
    return {name: c for name, c in (group or {}).items() if isinstance(c, DictConfig) and "_target_" in c}


def instantiate_all(group: DictConfig | None, setting: str) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group; a refused setting names ``<setting>.<entry>``."""
    return [instantiate(node, f"{setting}.{name}") for name, node in instantiable(group).items()]


def callbacks(cfg: DictConfig) -> list[Any]:
    """The configured callbacks, then the always-on guards (``configs/guards/``, ``ExactResume`` given the run's
    settings to record).

    Callbacks that Lightning refuses in this trainer are left out (with a log line) rather than failing the
    run: a progress bar or model summary the trainer was told not to show, and the monitors that write to a
    logger when there is none (``logger=null``).
    """
    refused_here: dict[type, str] = {}
    if not cfg.trainer.get("enable_progress_bar", True):
        refused_here[ProgressBar] = "trainer.enable_progress_bar=false"
    if not cfg.trainer.get("enable_model_summary", True):
        refused_here[ModelSummary] = "trainer.enable_model_summary=false"
    if not instantiable(cfg.get("logger")):
        refused_here[LearningRateMonitor] = refused_here[DeviceStatsMonitor] = "no logger"
    built = []
    for name, node in instantiable(cfg.get("callbacks")).items():
        callback = instantiate(node, f"callbacks.{name}")
        reason = next((why for kind, why in refused_here.items() if isinstance(callback, kind)), None)
        if reason:
            log.info("callbacks.%s left out: %s", name, reason)
        else:
            built.append(callback)
    guards = instantiate_all(cfg.get("guards"), "guards")
    for guard in guards:
        if isinstance(guard, ExactResume):  # what every checkpoint records, for the check of a later resume
            guard.settings = run_settings(cfg)
    log.debug("callbacks: %s", ", ".join(type(c).__name__ for c in built + guards))
    return built + guards


def check_optimization(task: Any, cfg: DictConfig) -> None:
    """Build the task's optimiser on the model's parameters and its schedule once, so that a value they refuse
    (``lr=-1``, ``pct_start=1.5``) is a ConfigError now rather than after the data has loaded."""
    try:
        optimizer = task.optimizer_factory(task.parameters())
    except REFUSALS as err:
        raise refused("task.optimizer", cfg.task.get("optimizer"), err) from None
    if task.scheduler_factory is not None:
        check_schedule_has_a_length(task, cfg)
        try:
            task.build_scheduler(optimizer, steps=100)
        except REFUSALS as err:
            raise refused("task.scheduler", cfg.task.get("scheduler"), err) from None


def check_schedule_has_a_length(task: Any, cfg: DictConfig) -> None:
    """A schedule laid out over the run's steps (OneCycleLR's ``total_steps``, cosine's ``T_max``) needs a run of
    known length: with ``max_epochs=-1`` and no ``max_steps`` it would be built for 20 steps and fail at step 21."""
    func = getattr(task.scheduler_factory, "func", task.scheduler_factory)
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    length = next((name for name in ("total_steps", "T_max", "total_iters") if name in params), None)
    trainer = cfg.trainer
    max_steps = trainer.get("max_steps")
    unlimited_steps = max_steps is None or max_steps == -1
    if length is None or trainer.get("max_epochs") != -1 or not unlimited_steps:
        return
    target = str(cfg.task.scheduler.get("_target_", "")) if isinstance(cfg.task.get("scheduler"), DictConfig) else ""
    name = target.rpartition(".")[2] or "the schedule"
    raise ConfigError(
        f"trainer.max_epochs: -1 (no limit) with no trainer.max_steps, but task.scheduler ({name}) spreads its "
        f"{length} over the run's length; give the run a length (trainer.max_epochs=N or trainer.max_steps=N), "
        "or train without a schedule (task.scheduler=null)"
    )


def plugins(cfg: DictConfig) -> list[Any]:
    """The trainer's plugins: those configured, and atomic checkpoint writes unless a CheckpointIO is configured."""
    configured = list(instantiate(cfg.trainer.get("plugins"), "trainer.plugins") or [])
    return configured if any(isinstance(p, CheckpointIO) for p in configured) else [*configured, AtomicCheckpointIO()]


def resume_wandb(cfg: DictConfig, checkpoint: dict[str, Any] | None) -> None:
    """A run resumed from a checkpoint logs to the W&B run the checkpoint came from."""
    wandb_id = (checkpoint or {}).get("wandb_id")
    if wandb_id and cfg.get("logger") and "wandb" in cfg.logger:
        with open_dict(cfg):
            cfg.logger.wandb.id = wandb_id
            cfg.logger.wandb.resume = "allow"
