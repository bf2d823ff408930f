"""Train one task recipe with the losses chosen in config: ``python train.py task=detection loss=focal``.

Compose (Hydra) -> check the loss slots and the checkpoint -> seed -> instantiate -> fit -> test -> return
the metric named by ``optimized_metric`` (what sweeps maximise or minimise). Every run also gets the
guards of docs/reliability.md: exact resume, atomic checkpoints, a stop on non-finite losses.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from losses.errors import ConfigError, RunError
from recipes.checks import check_config, resolve_checkpoint
from recipes.guards import NonFiniteGuard
from recipes.launch import finish_processes, pin_run_folder, register_resolvers
from recipes.loggers import finish_wandb
from recipes.resume import AtomicCheckpointIO, ExactResume

log = logging.getLogger("train")


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
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks`` or ``logger``."""
    if not group:
        return []
    return [instantiate(c) for c in group.values() if isinstance(c, DictConfig) and "_target_" in c]


def resume_wandb(cfg: DictConfig, checkpoint: dict[str, Any] | None) -> None:
    """A run resumed from a checkpoint logs to the W&B run the checkpoint came from."""
    wandb_id = (checkpoint or {}).get("wandb_id")
    if wandb_id and cfg.get("logger") and "wandb" in cfg.logger:
        with open_dict(cfg):
            cfg.logger.wandb.id = wandb_id
            cfg.logger.wandb.resume = "allow"


def plugins(cfg: DictConfig) -> list[Any]:
    """The trainer's plugins: those configured, and atomic checkpoint writes unless a CheckpointIO is configured."""
    configured = list(hydra.utils.instantiate(cfg.trainer.get("plugins")) or [])
    return configured if any(isinstance(p, CheckpointIO) for p in configured) else [*configured, AtomicCheckpointIO()]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test the configured task; returns every metric logged at the end, as floats.

    A config with a ``run`` node (a simulation, no data and no network) calls that instead.
    """
    if cfg.get("run") is not None:
        return hydra.utils.instantiate(cfg.run)()
    slot_losses = check_config(cfg)  # raises ConfigError before any data is touched
    ckpt_path, checkpoint = resolve_checkpoint(cfg)  # `last` resolved; unreadable is a ConfigError, still before data
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    if torch.cuda.is_available():
        torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "high"))  # TF32 matmuls

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    if cfg.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    if cfg.get("compile"):
        model.compile()  # in place: state_dict keys stay free of `_orig_mod.`
    task: L.LightningModule = instantiate(cfg.task, model=model, losses=slot_losses, _recursive_=True)
    resume_wandb(cfg, checkpoint)
    loggers = instantiate_all(cfg.get("logger"))
    callbacks = instantiate_all(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a bar it was told not to show
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    callbacks += [ExactResume(seed=cfg.get("seed")), NonFiniteGuard(
        skip=bool(cfg.get("skip_nonfinite")), check_every=int(cfg.get("nonfinite_check_every", 1))
    )]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, plugins=plugins(cfg))
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    pin_run_folder(trainer.world_size)  # DDP: the ranks Lightning starts write into this run's folder
    metrics: dict[str, float] = {}
    ok = False
    try:
        if cfg.get("fit", True):
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        if cfg.get("test", True):
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            ckpt = best or (None if cfg.get("fit", True) else ckpt_path)
            if best:
                log.info("testing the best checkpoint %s", best)
            trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        ok = True
    finally:
        finish_wandb(loggers)  # flush and close this run's W&B logs, even on error
        finish_processes(trainer, ok)
    return metrics


def run(cfg: DictConfig) -> dict[str, float]:
    """``train`` with the errors of docs/reliability.md as one message (from rank 0) and an exit status:
    2 for a configuration error (nothing was started), 1 for a run that could not go on. In a multirun the
    error is raised on, so that the sweeper records the failed job (Optuna tolerates up to max_failure_rate)."""
    try:
        return train(cfg)
    except (ConfigError, RunError) as err:
        if rank_zero_only.rank == 0:
            print(f"error: {err}", file=sys.stderr)
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        raise SystemExit(2 if isinstance(err, ConfigError) else 1) from None
    finally:
        finish_wandb()


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Entry point: one message and a non-zero exit status for a bad setting or a failed run, no traceback."""
    metrics = run(cfg)
    name = cfg.get("optimized_metric")
    if name and name not in metrics:
        log.warning("optimized_metric %r was not logged; logged: %s", name, ", ".join(sorted(metrics)))
    return metrics.get(name) if name else None


register_resolvers()  # before Hydra composes: configs/hydra/default.yaml uses them

if __name__ == "__main__":
    main()
