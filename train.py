"""Train one task recipe with the losses chosen in config: ``python train.py task=detection loss=focal``.

Compose (Hydra) -> check the loss slots -> seed -> instantiate -> fit -> test -> return the metric
named by ``optimized_metric`` (what sweeps maximise or minimise).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from losses.errors import ConfigError
from recipes.checks import check_config
from recipes.loggers import finish_wandb

log = logging.getLogger("train")


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks`` or ``logger``."""
    if not group:
        return []
    return [hydra.utils.instantiate(c) for c in group.values() if isinstance(c, DictConfig) and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test the configured task; returns every metric logged at the end, as floats."""
    slot_losses = check_config(cfg)  # raises ConfigError before any data is touched
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    if torch.cuda.is_available():
        torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "high"))  # TF32 matmuls

    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    if cfg.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    if cfg.get("compile"):
        model.compile()  # in place: state_dict keys stay free of `_orig_mod.`
    task: L.LightningModule = hydra.utils.instantiate(cfg.task, model=model, losses=slot_losses, _recursive_=True)
    loggers = instantiate_all(cfg.get("logger"))
    callbacks = instantiate_all(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a bar it was told not to show
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict[str, float] = {}
    if cfg.get("fit", True):
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    if cfg.get("test", True):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        ckpt = best or (None if cfg.get("fit", True) else cfg.get("ckpt_path"))
        if best:
            log.info("testing the best checkpoint %s", best)
        trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, weights_only=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return metrics


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Entry point: one message and exit status 2 for a configuration error, no traceback."""
    try:
        metrics = train(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        finish_wandb()
    name = cfg.get("optimized_metric")
    if name and name not in metrics:
        log.warning("optimized_metric %r was not logged; logged: %s", name, ", ".join(sorted(metrics)))
    return metrics.get(name) if name else None


if __name__ == "__main__":
    main()
