"""The check that runs on the composed config before any data is loaded or any model is built."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

import losses
from losses.errors import ConfigError, check, check_integer, check_number
from recipes.base import Task
from recipes.run.folder import check_run_folder, checkpoint_folder
from recipes.run.signatures import check_signatures
from recipes.run.tasks import TASKS, task_class, task_name, tasks_taking


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


def check_slot_settings(task: type[Task], slot: str, loss: nn.Module, cfg: DictConfig) -> None:
    """Loss settings that construct but would fail in the task's step: ``reduction=none`` where the step needs one
    number, class counts from data the task does not count, per-class vectors that do not fit the task's scores."""
    name = getattr(loss, "name", type(loss).__name__)
    if task.slot_reduction is None and getattr(loss, "reduction", None) == "none":
        fits = [r for r in getattr(loss, "reductions", ("mean", "sum")) if r != "none"]
        fix = "batchmean" if "batchmean" in fits else "mean"
        raise ConfigError(
            f"{slot}.reduction: task '{task_name(task)}' trains on one number per batch, but loss '{name}' with "
            f"reduction 'none' gives one per sample; use {slot}.reduction={fix} (or {', '.join(r for r in fits if r != fix)})"
        )
    settings = cfg.get("task") or {}
    classes = task.class_scores(slot, loss, settings)
    if getattr(loss, "counts_from_data", False) and not task.gives_class_counts:
        counting = [n for n, target in TASKS.items() if task_class(target).gives_class_counts]
        counts = f"{classes.count} counts: {classes.source}" if classes else "one count per class"
        raise ConfigError(
            f"{slot}.samples_per_class: null asks loss '{name}' to count the training labels of each class, which task "
            f"'{task_name(task)}' does not (task {', '.join(counting)} does); set {slot}.samples_per_class=[...] "
            f"({counts}), or use task={counting[0]}"
        )
    if classes is not None and hasattr(loss, "check_classes"):
        loss.check_classes(classes)


def check_trainer(cfg: DictConfig) -> None:
    """Refuse hardware the machine lacks before anything starts."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator: '{accelerator}' asked for, but this machine has no CUDA GPU; use trainer=cpu"
            " (or trainer=ddp_cpu for DDP on CPU processes)"
        )
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    strategy = cfg.trainer.get("strategy")
    name = str(strategy.get("_target_", "")) if isinstance(strategy, DictConfig) else str(strategy or "")
    if on_cpu and "fsdp" in name.lower():
        raise ConfigError("trainer.strategy: FSDP runs on GPUs only (Lightning refuses the CPU); use trainer=ddp_cpu on CPU")
    several = str(cfg.trainer.get("devices", 1)) not in ("1", "auto", "None") or str(cfg.trainer.get("num_nodes", 1)) != "1"
    if on_cpu and cfg.trainer.get("sync_batchnorm") and several:
        raise ConfigError(
            "trainer.sync_batchnorm: PyTorch's SyncBatchNorm runs on GPUs only; set trainer.sync_batchnorm=false "
            "on CPU processes (trainer=ddp_cpu does)"
        )


def batches_limit_ok(value: object) -> bool:
    """A ``limit_*_batches`` value: null, an integer >= 1 or a fraction in (0, 1]."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 1 if isinstance(value, int) else 0 < value <= 1


def check_trainer_settings(cfg: DictConfig) -> None:
    """The Trainer settings Lightning accepts but that fail after data loads (ZeroDivisionError), train nothing,
    are ignored or silently changed (fp16 on a CPU runs bf16), or wait forever (several nodes on one machine)."""
    trainer = cfg.trainer
    for key in ("accumulate_grad_batches", "log_every_n_steps", "num_nodes"):
        if trainer.get(key) is not None:
            check_integer("trainer", key, trainer[key], low=1)
    if trainer.get("check_val_every_n_epoch") is not None:
        check_integer("trainer", "check_val_every_n_epoch", trainer.check_val_every_n_epoch, low=1)
    max_epochs = trainer.get("max_epochs")
    check(
        "trainer",
        max_epochs is None or max_epochs == -1 or max_epochs >= 1,
        "max_epochs must be >= 1 (or -1 for no limit): 0 would test an untrained model",
        max_epochs,
    )
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = trainer.get(key)
        check(
            "trainer",
            batches_limit_ok(value),
            f"{key} must be null, an integer >= 1 or a fraction in (0, 1] (0 would skip that split)",
            value,
        )
    if trainer.get("gradient_clip_val") is not None:
        check_number("trainer", "gradient_clip_val", trainer.gradient_clip_val, low=0)
    devices = trainer.get("devices")
    check(
        "trainer",
        devices not in (0, "0", []) and not (isinstance(devices, int) and devices < -1),
        "devices must be a positive number of devices, -1 (all), 'auto' or a list of device indices",
        devices,
    )
    precision = str(trainer.get("precision"))
    check(
        "trainer",
        precision not in ("64", "64-true"),
        "precision must be 32-true, bf16-mixed or 16-mixed: the datamodules give float32 batches",
        precision,
    )
    accelerator = str(trainer.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    check(
        "trainer",
        not (on_cpu and precision in ("16", "16-mixed", "16-true")),
        "precision: float16 does not run on the CPU (Lightning would switch to bf16-mixed silently); "
        "use precision=bf16-mixed or 32-true, or trainer=gpu",
        precision,
    )
    cluster = any(os.environ.get(var) for var in ("MASTER_ADDR", "SLURM_NNODES", "SLURM_JOB_ID", "WORLD_SIZE"))
    nodes = trainer.get("num_nodes") or 1
    check(
        "trainer",
        nodes == 1 or cluster,
        "num_nodes > 1 needs a cluster launcher (SLURM: hydra/launcher=slurm, or torchrun setting MASTER_ADDR); "
        "on one machine the run would wait forever for the other nodes; set trainer.num_nodes=1",
        nodes,
    )


def check_output_folders(cfg: DictConfig) -> None:
    """Every folder a run writes to (its run folder, checkpoint folders) must be creatable and writable."""
    from recipes.run.launch import writable_folder_error

    def select(key: str) -> Any:  # None where an interpolation cannot be resolved outside a Hydra run
        return OmegaConf.select(cfg, key, throw_on_resolution_failure=False)

    folders = {"paths.output_dir": select("paths.output_dir")}
    for name, callback in (cfg.get("callbacks") or {}).items():
        if isinstance(callback, DictConfig) and "dirpath" in callback:
            folders[f"callbacks.{name}.dirpath"] = select(f"callbacks.{name}.dirpath")
    for setting, folder in folders.items():
        reason = folder and writable_folder_error(folder)
        if reason:
            raise ConfigError(f"{setting}: cannot write to {folder} ({reason}); set {setting}=<a writable folder>")


def resolve_checkpoint(cfg: DictConfig) -> tuple[str | None, dict[str, Any] | None]:
    """``ckpt_path`` as a file (``last`` is this run folder's ``checkpoints/last.ckpt``) and its contents.

    The file is opened as training will open it (``weights_only=True``), so a missing, truncated or
    foreign file is a ConfigError before any data loads.
    """
    from recipes.run.resume import read_checkpoint

    value = cfg.get("ckpt_path")
    if value is None:
        return None, None
    path = Path(str(value))
    if str(value) == "last":
        path = checkpoint_folder(cfg) / "last.ckpt"
        if not path.is_file():
            raise ConfigError(
                f"ckpt_path=last: there is no {path}. `last` resumes the run whose folder this is: add "
                "hydra.run.dir=<that run's folder> (e.g. logs/classification/runs/<date>), or give the file with "
                "ckpt_path=<path/to/last.ckpt>"
            )
    return str(path), read_checkpoint(path)


def check_config(cfg: DictConfig) -> dict[str, nn.Module]:
    """Check every slot of the configured task and return the built losses, keyed by slot."""
    if "task" not in cfg or "_target_" not in cfg.task:
        raise ConfigError("task: no task chosen; use task=NAME")
    task = task_class(cfg.task._target_)
    check_signatures(cfg)  # every `_target_` imports and takes its keys; values converted to their types
    check_trainer(cfg)
    check_trainer_settings(cfg)
    losses = {slot: check_slot(task, slot, cfg.get(slot)) for slot in task.slots}
    for slot, loss in losses.items():
        check_slot_settings(task, slot, loss, cfg)
    check_output_folders(cfg)
    check_run_folder(cfg)
    return losses
