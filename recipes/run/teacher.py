"""A distillation teacher trained as a run of its own: the classification recipe in ``<run>/teacher/``.

When ``task.teacher_ckpt`` is null (and the run neither resumes nor only tests), ``train.py`` calls
``train_teacher_first`` after building the task and before fitting it: the classification recipe
(cross-entropy, ``task.teacher_model``, the same data, optimiser and schedule, ``task.teacher_epochs`` or
``trainer.max_epochs``) goes through the same ``train()`` as any run, with its own checkpoints and CSV log
under ``<run>/teacher/``. Its best weights become ``<run>/teacher/teacher.pt``, and the distillation task
loads them as if the user had passed ``task.teacher_ckpt``. ``task.teacher_cache`` is loaded when it exists,
else written (atomically) after training, so the runs of a sweep share one teacher.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from losses.errors import ConfigError
from recipes.run.checks import checkpoint_folder
from recipes.run.resume import rng_states, set_rng_states

log = logging.getLogger(__name__)


def needs_teacher(cfg: DictConfig, task: L.LightningModule) -> bool:
    """Whether this run must train (or fetch from the cache) a teacher before fitting ``task``."""
    if not callable(getattr(task, "use_teacher", None)) or getattr(task, "teacher_ckpt", None):
        return False
    return bool(cfg.get("fit", True)) and cfg.get("ckpt_path") is None  # a resumed run's checkpoint holds the teacher


def teacher_config(cfg: DictConfig, task: L.LightningModule) -> DictConfig:
    """The distillation run's config turned into a classification run of the teacher in ``<run>/teacher/``."""
    folder = Path(cfg.paths.output_dir) / "teacher"
    teacher = copy.deepcopy(cfg)
    with open_dict(teacher):
        teacher.task = {
            "_target_": "recipes.classification.ClassificationTask",
            "num_classes": cfg.task.num_classes,
            "optimizer": cfg.task.optimizer,
            "scheduler": cfg.task.get("scheduler"),
        }
        teacher.model = cfg.task.teacher_model
        teacher.loss = {"name": "ce"}
        teacher.paths.output_dir = str(folder)
        teacher.trainer.max_epochs = task.teacher_epochs or cfg.trainer.max_epochs
        csv = {"_target_": "recipes.run.loggers.CSVLogger", "save_dir": str(folder), "name": "csv", "version": ""}
        teacher.logger = {"csv": csv}  # CSV only: a sweep's teachers open no W&B runs of their own
        teacher.callbacks = teacher.get("callbacks") or {}
        teacher.callbacks.model_checkpoint = {
            "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
            "dirpath": str(folder / "checkpoints"),
            "filename": "best",
            "monitor": "val/acc",
            "mode": "max",
            "save_last": True,
            "auto_insert_metric_name": False,
            "enable_version_counter": False,
        }
        teacher.monitor = {"metric": "val/acc", "mode": "max"}
        teacher.optimized_metric = "val/acc"
        teacher.ckpt_path, teacher.fit, teacher.test, teacher.run = None, True, False, None
    return teacher


def train_teacher_first(
    cfg: DictConfig, task: L.LightningModule, trainer: L.Trainer, train: Callable[[DictConfig], dict[str, float]]
) -> None:
    """Give a distillation ``task`` without ``teacher_ckpt`` its teacher: from ``task.teacher_cache`` or a run of its own.

    ``train`` is ``train.py``'s; the RNG states are restored afterwards, so the distillation run goes on
    exactly as if the teacher had come from a file. With several processes the teacher must come from a
    checkpoint (each process would train a different one): a ConfigError before anything trains.
    """
    if not needs_teacher(cfg, task):
        return
    if trainer.world_size > 1:
        raise ConfigError(
            "task.teacher_ckpt: with several processes the teacher must come from a checkpoint; train it first "
            "(python train.py task=classification model=convnet) and pass task.teacher_ckpt=.../checkpoints/best.ckpt"
        )
    cache: Path | None = task.teacher_cache
    if cache is not None and cache.is_file():
        log.info("teacher: loading %s (task.teacher_cache)", cache)
        path = cache
    else:
        path = train_teacher(cfg, task, train)
        if cache is not None:
            write_atomically(path, cache)
            log.info("teacher: cached as %s for the next runs", cache)
    task.use_teacher(path)
    with open_dict(cfg):
        cfg.task.teacher_ckpt = str(path)  # the loggers' copy of the config says where the teacher came from


def train_teacher(cfg: DictConfig, task: L.LightningModule, train: Callable[[DictConfig], dict[str, float]]) -> Path:
    """Run the classification recipe on the teacher's config; its best weights saved as ``<run>/teacher/teacher.pt``."""
    teacher_cfg = teacher_config(cfg, task)
    folder = Path(teacher_cfg.paths.output_dir)
    architecture = OmegaConf.select(cfg, "task.teacher_model._target_")
    epochs = teacher_cfg.trainer.max_epochs
    log.info("teacher: no task.teacher_ckpt; training %s for %d epochs in %s", architecture, epochs, folder)
    states = rng_states()
    try:
        metrics = train(teacher_cfg)
    finally:
        set_rng_states(states)
    saved = checkpoint_folder(teacher_cfg)
    best = saved / "best.ckpt" if (saved / "best.ckpt").is_file() else saved / "last.ckpt"  # no validation: the last
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    path = folder / "teacher.pt"
    torch.save({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}, path)
    accuracy = metrics.get("val/acc", math.nan)
    log.info("teacher: val/acc %.4f, weights saved to %s (reuse with task.teacher_ckpt=%s)", accuracy, path, path)
    return path


def write_atomically(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` through a hidden partial file, so a parallel job never reads half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.copyfile(source, partial)
    partial.replace(target)
