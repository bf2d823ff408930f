"""The check that runs on the composed config before any data is loaded or any model is built."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

import losses
from losses.errors import ConfigError, check, check_integer, check_number
from recipes.base import Task
from recipes.run.combinations import check_combination, check_monitor
from recipes.run.folder import checkpoint_folder
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
    """A slot's loss must exist, be of a kind the slot takes and have valid hyperparameters.

    The loss is registered (``{name: focal, ...}``) or the user's own class (``{_target_: my_pkg.MyLoss, ...}``),
    whose kind comes from its class attribute ``kind`` or the config's ``kind:`` key.
    """
    kinds = task.slots[slot]
    fitting = [n for kind in kinds for n in losses.available(kind)]
    if loss_cfg is not None and "_target_" in loss_cfg:
        return check_own_loss(task, slot, loss_cfg)
    if loss_cfg is None or "name" not in loss_cfg:
        raise ConfigError(
            f"{slot}: task '{task_name(task)}' needs a loss in slot '{slot}' (kind {' or '.join(kinds)}); "
            f"choose one with {slot}=NAME from: {', '.join(fitting)}, or give your own class with "
            f"'~{slot}' '+{slot}._target_=my_pkg.MyLoss'"
        )
    name = loss_cfg.name
    check_kind(task, slot, f"{slot}={name}", f"loss '{name}'", losses.kind_of(name), fitting)
    return build_loss(slot, loss_cfg)


def check_kind(task: type[Task], slot: str, setting: str, loss: str, kind: str, fitting: list[str]) -> None:
    """Refuse a loss whose kind the slot does not take, naming the kinds it takes and the losses that fit."""
    kinds = task.slots[slot]
    if kind in kinds:
        return
    elsewhere = tasks_taking(kind)
    raise ConfigError(
        f"{setting}: {loss} is of kind '{kind}', but slot '{slot}' of task '{task_name(task)}' "
        f"takes kind {' or '.join(repr(k) for k in kinds)}. Losses that fit: {', '.join(fitting)}. "
        + (f"{loss} fits task {', '.join(elsewhere)}." if elsewhere else f"No task takes kind '{kind}' yet.")
    )


def check_own_loss(task: type[Task], slot: str, loss_cfg: DictConfig) -> nn.Module:
    """The user's own loss class (``_target_``): it imports, declares a kind the slot takes, and builds."""
    target = str(loss_cfg._target_)
    if "name" in loss_cfg:
        raise ConfigError(
            f"{slot}: both name={loss_cfg.name} (a registered loss) and _target_={target} (your own class) are set; "
            f"start your own from an empty slot: '~{slot}' '+{slot}._target_={target}'"
        )
    module_name, _, class_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(
            f"{slot}._target_: cannot import {target!r} ({type(err).__name__}: {err}); give a class as "
            "package.module.ClassName from a module on PYTHONPATH or an installed package"
        ) from None
    kind = loss_cfg.get("kind") or getattr(cls, "kind", None)
    kinds = task.slots[slot]
    if not kind:
        raise ConfigError(
            f"{slot}._target_: loss class {target!r} declares no kind, so slot '{slot}' cannot check what it takes; "
            f'declare it in the class (kind = "{kinds[0]}") or in the config ({slot}.kind={kinds[0]}). '
            f"Kinds: {', '.join(losses.KINDS)}"
        )
    if kind not in losses.KINDS:
        raise ConfigError(f"{slot}.kind: unknown loss kind {kind!r} for {target!r}; kinds are {', '.join(losses.KINDS)}")
    fitting = [n for k in kinds for n in losses.available(k)]
    check_kind(task, slot, f"{slot}._target_={target}", f"loss class '{class_name}'", str(kind), fitting)
    return build_own_loss(slot, cls, loss_cfg, str(kind))


def build_own_loss(slot: str, cls: type, loss_cfg: DictConfig, kind: str) -> nn.Module:
    """Instantiate the user's loss (Hydra, so nested ``_target_`` values work) without the ``kind`` key; a
    constructor error becomes one ConfigError naming the slot. A class without a ``name`` (or with the placeholder
    that ``losses.Loss`` holds) is named after itself, as ``register`` names a registered one."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    node = {k: v for k, v in OmegaConf.to_container(loss_cfg, resolve=True).items() if k != "kind"}
    if getattr(cls, "name", losses.Loss.name) == losses.Loss.name:  # no name of its own: messages use the class's
        cls.name = cls.__name__
    try:
        loss = instantiate(node)
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, ConfigError):
            raise ConfigError(f"{slot}: {cause}") from None
        import inspect

        params = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
        given = [str(k) for k in node if k != "_target_"]
        leftover = (
            f"; arguments you did not give come from the slot's default loss: empty the slot with '~{slot}' "
            f"before '+{slot}._target_=...'"
            if isinstance(cause, TypeError)
            else ""
        )
        raise ConfigError(
            f"{slot}: {cls.__name__}({', '.join(f'{k}=...' for k in given)}) failed: {type(cause).__name__}: {cause}; "
            f"its arguments are {', '.join(params) or 'none'} (set them with +{slot}.ARG=VALUE){leftover}"
        ) from None
    if not isinstance(loss, nn.Module):
        raise ConfigError(f"{slot}._target_: {cls.__name__} built a {type(loss).__name__}, not a torch.nn.Module")
    loss.kind = kind
    for declaration in DECLARATIONS:  # a plain nn.Module declares nothing: the tasks read Loss's defaults
        if not hasattr(loss, declaration):
            setattr(loss, declaration, getattr(losses.Loss, declaration))
    return loss


# what tasks read from every loss (losses/base.py): a user loss gets Loss's default for those it does not declare
DECLARATIONS = ("target_format", "head", "target_need", "counts_from_data", "citations")


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
    known = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
    if accelerator not in known:
        raise ConfigError(
            f"trainer.accelerator: must be one of {', '.join(known)} (got {accelerator!r}); trainer=cpu or trainer=gpu"
        )
    available = {"mps": torch.backends.mps.is_available(), "tpu": importlib.util.find_spec("torch_xla") is not None}
    if not available.get(accelerator, True):
        raise ConfigError(
            f"trainer.accelerator: '{accelerator}' asked for, but this machine has no {accelerator.upper()}; use trainer=cpu"
        )
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
    max_steps = trainer.get("max_steps")
    check(
        "trainer",
        max_steps is None or (type(max_steps) is int and (max_steps == -1 or max_steps >= 1)),
        "max_steps must be an integer >= 1, or -1 for no limit (max_epochs decides)",
        max_steps,
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


def check_callback_settings(cfg: DictConfig) -> None:
    """EarlyStopping settings Lightning takes without a word: a negative ``patience`` stops at the first validation
    that does not improve (as 0 does), a negative ``min_delta`` counts a worse metric as an improvement."""
    for name, node in (cfg.get("callbacks") or {}).items():
        if not isinstance(node, DictConfig) or not str(node.get("_target_", "")).endswith(".EarlyStopping"):
            continue
        if node.get("patience") is not None:
            check_integer(f"callbacks.{name}", "patience", node.patience, low=0)
        if node.get("min_delta") is not None:
            check_number(f"callbacks.{name}", "min_delta", node.min_delta, low=0)


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
    foreign file is a ConfigError before any data loads; so is a resume with other settings than the
    checkpoint's (``check_resume_settings``).
    """
    from recipes.run.resume import check_resume_settings, read_checkpoint

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
    checkpoint = read_checkpoint(path)
    if cfg.get("fit", True):
        check_resume_settings(cfg, checkpoint, path)
    return str(path), checkpoint


def check_config(cfg: DictConfig) -> dict[str, nn.Module]:
    """Check every slot of the configured task and return the built losses, keyed by slot."""
    if "task" not in cfg or "_target_" not in cfg.task:
        raise ConfigError("task: no task chosen; use task=NAME")
    task = task_class(cfg.task._target_)
    check_combination(cfg, task)  # task x data x model by name, before their keys are checked against signatures
    check_signatures(cfg, skip=tuple(task.slots))  # every `_target_` imports and takes its keys; values converted to their types
    check_trainer(cfg)
    check_trainer_settings(cfg)
    check_callback_settings(cfg)
    losses = {slot: check_slot(task, slot, cfg.get(slot)) for slot in task.slots}
    for slot, loss in losses.items():
        check_slot_settings(task, slot, loss, cfg)
    check_monitor(cfg, task, losses)
    check_output_folders(cfg)
    return losses
