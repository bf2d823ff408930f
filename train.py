"""Train one task recipe with the losses chosen in config: ``python train.py task=detection loss=focal``.

Compose (Hydra) -> check the loss slots and the checkpoint -> seed -> instantiate -> fit -> test -> return
the metric named by ``optimized_metric`` (what sweeps maximise or minimise). Every component is built by
``recipes.run.build``; every run also gets the guards of docs/reliability.md (``configs/guards/``: exact resume,
a stop on non-finite losses; atomic checkpoints).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from losses.errors import ConfigError
from recipes.run import extras
from recipes.run.build import callbacks, check_optimization, instantiate, instantiate_all, plugins, resume_wandb
from recipes.run.bundle import bundle_trainer
from recipes.run.checks import check_config, resolve_checkpoint
from recipes.run.errors import RunError, SigtermError
from recipes.run.folder import check_run_folder, lock_run_folder, stopped_by_sigterm, stopped_testing, unlock_run_folder
from recipes.run.launch import check_optimized_metric, finish_processes, pin_run_folder
from recipes.run.loggers import finish_wandb
from recipes.run.overrides import report_config_errors
from recipes.run.project import setup_project
from recipes.run.resolvers import register_resolvers, resolver_error
from recipes.run.resume import check_checkpoint_fits
from recipes.run.search import missing_extra
from recipes.run.teacher import train_teacher_first

log = logging.getLogger("train")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test the configured task; returns every metric logged at the end, as floats.

    A config with a ``run`` node (a simulation, no data and no network) calls that instead.
    """
    if cfg.get("run") is not None:
        extras.start(cfg)
        return instantiate(cfg.run, "run")()
    slot_losses = check_config(cfg)  # raises ConfigError before any data is touched
    ckpt_path, checkpoint = resolve_checkpoint(cfg)  # `last` resolved; unreadable is a ConfigError, still before data
    check_run_folder(cfg)  # no new run over another run's checkpoints
    extras.start(cfg)  # warnings filter, tags, the config tree and the run folder
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    if torch.cuda.is_available():
        torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "high"))  # TF32 matmuls

    datamodule, task, loggers, trainer = build(cfg, slot_losses, checkpoint, ckpt_path)
    train_teacher_first(cfg, task, trainer, train)  # distillation without task.teacher_ckpt: a classification run first
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    pin_run_folder(trainer.world_size)  # DDP: the ranks Lightning starts write into this run's folder
    lock_run_folder(cfg.paths.output_dir)  # one live run per folder
    metrics: dict[str, float] = {}
    best = ""
    ok = False
    try:
        if cfg.get("fit", True):
            try:
                trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            except SIGTERMException:
                raise stopped_by_sigterm(trainer, cfg.paths.output_dir) from None
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        if cfg.get("test", True):
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            ckpt = best or (None if cfg.get("fit", True) else ckpt_path)
            if best:
                log.info("testing the best checkpoint %s", best)
            try:
                trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
            except SIGTERMException:
                raise stopped_testing(ckpt) from None
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        ok = True
    finally:
        finish_wandb(loggers)  # flush and close this run's W&B logs, even on error
        finish_processes(trainer, ok)
        unlock_run_folder(cfg.paths.output_dir)
    extras.finish(cfg, metrics, best)
    return metrics


def build(
    cfg: DictConfig, slot_losses: dict[str, torch.nn.Module], checkpoint: dict | None = None, ckpt_path: str | None = None
) -> tuple[L.LightningDataModule, L.LightningModule, list[Any], L.Trainer]:
    """The run's datamodule, task, loggers and Trainer with every configured callback and guard, built as every
    run builds them (``bench.overhead`` times this Trainer); nothing is loaded or fitted yet."""
    datamodule: L.LightningDataModule = instantiate(cfg.data, "data")  # reads nothing yet: data loads in fit
    model = instantiate(cfg.model, "model")
    if cfg.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    if cfg.get("compile"):
        model.compile()  # in place: state_dict keys stay free of `_orig_mod.`
    task: L.LightningModule = instantiate(cfg.task, "task", model=model, losses=slot_losses, _recursive_=True)
    check_optimization(task, cfg)
    check_checkpoint_fits(task, checkpoint, ckpt_path)  # another task's or model's weights: a ConfigError, before data
    if cfg.get("fit", True):
        resume_wandb(cfg, checkpoint)  # testing a checkpoint (eval.py) is a W&B run of its own
    loggers = instantiate_all(cfg.get("logger"), "logger")
    trainer: L.Trainer = instantiate(cfg.trainer, "trainer", callbacks=callbacks(cfg), logger=loggers, plugins=plugins(cfg))
    bundle_trainer(trainer)  # one callback for Lightning to call on every hook, not nine
    return datamodule, task, loggers, trainer


def run(cfg: DictConfig, entry: Callable[[DictConfig], dict[str, float]] = train) -> dict[str, float]:
    """``entry`` (``train``, or eval.py's ``evaluate``) with the errors of docs/reliability.md as one message (from
    rank 0) and an exit status: 2 for a configuration error (nothing was started), 1 for a run that could not go on.
    In a multirun the error is raised on, so that the sweeper records the failed job (Optuna tolerates up to
    max_failure_rate) and ``recipes.run.launch.RecordFailures`` writes it to the job's ``error.txt``; a job stopped
    by SIGTERM is reported by ``recipes.run.launch.StopSweepOnSigterm``, which ends the sweep."""
    try:
        try:
            metrics = entry(cfg)
        except InterpolationResolutionError as err:  # a resolver's ConfigError (e.g. data.root of image_folder)
            raise resolver_error(err) from None
        if entry is train:
            check_optimized_metric(cfg.get("optimized_metric"), metrics)  # a sweep job without it fails
        return metrics
    except (ConfigError, RunError) as err:
        multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
        if rank_zero_only.rank == 0 and not (multirun and isinstance(err, SigtermError)):  # the sweep says that once
            print(f"error: {err}", file=sys.stderr)
        if multirun:
            raise
        raise SystemExit(2 if isinstance(err, ConfigError) else 1) from None
    finally:
        finish_wandb()


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Entry point: one message and a non-zero exit status for a bad setting or a failed run, no traceback."""
    logging.captureWarnings(True)  # warnings go to train.log too
    metrics = run(cfg)
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


setup_project(__file__)  # .env, and paths rooted at this folder wherever the command starts
register_resolvers()  # before Hydra composes: configs/hydra/default.yaml uses them

if __name__ == "__main__":
    if message := missing_extra(sys.argv[1:]):  # a search without the optuna extra: one message, exit status 2
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)
    report_config_errors(main)  # an override Hydra cannot compose: one message, exit 2
