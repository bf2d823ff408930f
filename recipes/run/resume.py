"""Exact resume: a run killed mid-epoch and resumed from its last checkpoint ends as if never stopped.

Lightning restores the weights, optimiser, schedulers and loop counters. This module adds what a
mid-epoch restart also needs: the training order as a pure function of (seed, epoch) that starts at
the batch after the last one trained (``ResumableSampler``), and every process's RNG states (torch,
CUDA, numpy, python) saved in the checkpoint and restored when training restarts (``ExactResume``).
Checkpoints are written atomically (``AtomicCheckpointIO``) and hold only what ``torch.load(...,
weights_only=True)`` accepts; ``read_checkpoint`` is how ``ckpt_path`` is checked before data loads.
"""

from __future__ import annotations

import os
import pickle
import random
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.types import _Stateful
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import Container, DictConfig, OmegaConf
from torch import Tensor, nn
from torch.nn.parameter import UninitializedParameter
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from losses.errors import ConfigError
from recipes.data.device import DeviceBatches
from recipes.run.errors import RunError, torch_write_failed, write_failed

PRIMITIVES = (str, int, float, bool, type(None), torch.Tensor)


# ----- the training order ---------------------------------------------------------------------
class ResumableSampler(DistributedSampler):
    """``DistributedSampler``'s order (a permutation seeded by ``seed + epoch``, strided over ranks),
    also in one process, skipping the samples this epoch has already trained on.

    ``consumed()`` is read when an epoch's iteration starts: 0 in a fresh epoch, the samples of the
    batches already trained when a run restarts mid-epoch. One process on a global batch of ``B``
    and ``n`` processes on ``B / n`` each see the same batches, so DDP reproduces a single process.
    """

    def __init__(self, dataset: Any, num_replicas: int, rank: int, shuffle: bool, seed: int, consumed: Callable[[], int]) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.consumed = consumed

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.consumed() :])


class ResumableDeviceBatches(DeviceBatches):
    """``DeviceBatches`` whose order is ``ResumableSampler``'s: seeded by (seed, epoch), starting after the batches trained."""

    def __init__(self, batches: DeviceBatches, trainer: L.Trainer, seed: int) -> None:
        super().__init__(batches.tensors, batches.batch_size, batches.shuffle, batches.drop_last)
        self.seed, self.trainer = seed, trainer

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        fit_loop = self.trainer.fit_loop
        sampler = ResumableSampler(
            range(self.count),
            num_replicas=self.trainer.world_size,
            rank=self.trainer.global_rank,
            shuffle=self.shuffle,
            seed=self.seed,
            consumed=lambda: fit_loop.epoch_loop.batch_progress.current.ready * self.batch_size,
        )
        sampler.set_epoch(fit_loop.epoch_progress.current.processed)
        order = torch.tensor(list(sampler), dtype=torch.long, device=self.tensors[0].device)
        for i in range(len(self) - fit_loop.epoch_loop.batch_progress.current.ready):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


def resumable_loader(loader: Any, trainer: L.Trainer, seed: int) -> Any:
    """The same DataLoader with a ``ResumableSampler``; a stateful loader (Lightning restores it, e.g. the streaming
    one) and a resumable one as they are; other iterables as they are, with a warning."""
    resumable = isinstance(loader, (ResumableDeviceBatches, _Stateful))
    if resumable or isinstance(getattr(loader, "sampler", None), ResumableSampler):
        return loader
    if isinstance(loader, DeviceBatches):
        return ResumableDeviceBatches(loader, trainer, seed)
    plain = (
        type(loader) is DataLoader
        and type(loader.batch_sampler) is BatchSampler
        and type(loader.sampler) in (RandomSampler, SequentialSampler)
    )
    if not plain:
        warnings.warn(
            f"exact resume: the training loader is a {type(loader).__name__} with its own sampling, so a run resumed "
            "mid-epoch restarts that epoch's order; epoch-end checkpoints resume exactly",
            stacklevel=2,
        )
        return loader
    batch_size = loader.batch_size
    progress = trainer.fit_loop.epoch_loop.batch_progress
    sampler = ResumableSampler(
        loader.dataset,
        num_replicas=trainer.world_size,
        rank=trainer.global_rank,
        shuffle=isinstance(loader.sampler, RandomSampler),
        seed=seed,
        consumed=lambda: progress.current.ready * batch_size,
    )
    return DataLoader(
        loader.dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=torch.Generator().manual_seed(seed),  # worker seeds: not drawn from the global RNG
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
        pin_memory_device=loader.pin_memory_device,
    )


# ----- RNG states -----------------------------------------------------------------------------
def rng_states() -> dict[str, Any]:
    """This process's RNG states, as tensors and tuples of numbers (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned."""
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def primitive(value: Any) -> Any:
    """``value`` with OmegaConf containers turned into dicts and lists and other objects into their repr."""
    if isinstance(value, Container):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {str(k): primitive(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(primitive(v) for v in value)
    return value if isinstance(value, PRIMITIVES) else repr(value)


class ExactResume(L.Callback):
    """Puts into every checkpoint what an exact mid-epoch resume needs, and restores it.

    - the training loader's sampler becomes a ``ResumableSampler`` seeded with ``seed``;
    - the RNG states of every rank are saved, and restored at ``on_train_start`` of a resumed run;
    - the W&B run id is saved (``train.py`` gives it back to the logger, so W&B resumes the same run);
    - hyperparameters are stored as primitives, so the checkpoint loads with ``weights_only=True``;
    - ``settings`` (``run_settings(cfg)``, set by ``recipes.run.build.callbacks``) are stored as ``run_settings``,
      so that a resume with another loss, batch size, model or seed is refused (``check_resume_settings``).
    """

    def __init__(self, seed: int | None = None, settings: dict[str, Any] | None = None) -> None:
        self.seed = int(seed) if seed is not None else random.SystemRandom().randrange(2**31)
        self.settings = settings
        self.trainer: L.Trainer | None = None
        self._restore: list[dict[str, Any]] | None = None
        self._original_loader: Callable[[], Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.trainer = trainer
        if trainer.world_size > 1:  # without a seed each rank drew its own: take rank 0's, so the ranks split one order
            self.seed = int(trainer.strategy.broadcast(self.seed, src=0))
        datamodule = trainer.datamodule
        if stage != "fit" or datamodule is None or self._original_loader is not None:
            return
        self._original_loader = original = datamodule.train_dataloader

        def train_dataloader() -> Any:
            loader = resumable_loader(original(), trainer, self.seed)
            if isinstance(loader, ResumableDeviceBatches) or isinstance(getattr(loader, "sampler", None), ResumableSampler):
                # Lightning cannot tell that this loader resumes mid-epoch; its warning would be wrong
                warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
            return loader

        datamodule.train_dataloader = train_dataloader

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._original_loader is not None and trainer.datamodule is not None:
            del trainer.datamodule.train_dataloader  # the instance attribute; the class method shows again
            self._original_loader = None

    def state_dict(self) -> dict[str, Any]:
        states = rng_states()
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, states)
            return {"seed": self.seed, "rng": gathered}
        return {"seed": self.seed, "rng": [states]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seed = int(state_dict["seed"])
        self._restore = state_dict["rng"]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._restore is None:
            return
        rank = trainer.global_rank
        if len(self._restore) != trainer.world_size:
            warnings.warn(
                f"exact resume: the checkpoint holds RNG states of {len(self._restore)} processes, this run has "
                f"{trainer.world_size}; every process takes rank 0's",
                stacklevel=2,
            )
            rank = 0
        set_rng_states(self._restore[rank])
        self._restore = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger" and logger.version:
                checkpoint["wandb_id"] = str(logger.version)
        for key in ("hyper_parameters", "datamodule_hyper_parameters"):
            if key in checkpoint:
                checkpoint[key] = primitive(checkpoint[key])
        for key in ("hparams_type", "datamodule_hparams_type"):
            checkpoint.pop(key, None)
        if self.settings is not None:
            checkpoint[SETTINGS_KEY] = primitive(self.settings)


# ----- the settings a resume must keep --------------------------------------------------------
SETTINGS_KEY = "run_settings"
# keys that say where things are or how they are read, not what is trained: a resume may change them
UNRECORDED = {"data_dir", "download", "num_workers", "eval_batch_size", "on_device", "pin_memory", "_partial_"}
UNRECORDED_ENDINGS = ("_dir", "_path", "_ckpt", "_cache")


def flat_settings(prefix: str, node: Any) -> dict[str, Any]:
    """``{"data": {"batch_size": 32}}`` as ``{"data.batch_size": 32}``, leaving out the keys in ``UNRECORDED``."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if key in UNRECORDED or str(key).endswith(UNRECORDED_ENDINGS):
            continue
        flat.update(flat_settings(f"{prefix}.{key}", value))
    return flat


def run_settings(cfg: DictConfig) -> dict[str, Any]:
    """The settings an exact resume depends on, flat (``data.batch_size: 32``): the task and its hyperparameters
    (optimiser, schedule), each loss slot's config, the model's, the data's (not where it lives or how it is read),
    the seed and the optimiser-step settings of the trainer."""
    from recipes.run.tasks import task_class, task_name

    def node(key: str) -> Any:
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value

    task = node("task") or {}
    cls = task_class(str(task.pop("_target_")))
    settings: dict[str, Any] = {"task": task_name(cls), **flat_settings("task", task)}
    for key in (*cls.slots, "model", "data"):
        settings.update(flat_settings(key, node(key)))
    settings["seed"] = node("seed")
    for key in ("accumulate_grad_batches", "gradient_clip_val"):
        settings[f"trainer.{key}"] = node(f"trainer.{key}")
    return settings


def setting_changes(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``data.batch_size=32, this run has 64`` for each setting that differs between a checkpoint and this run."""

    def shown(value: Any) -> str:
        return "null" if value is None else str(value)

    changes = []
    for key in [*saved, *(k for k in now if k not in saved)]:
        if key not in now:
            changes.append(f"{key}={shown(saved[key])}, this run has no {key}")
        elif key not in saved:
            changes.append(f"no {key}, this run has {key}={shown(now[key])}")
        elif saved[key] != now[key]:
            changes.append(f"{key}={shown(saved[key])}, this run has {shown(now[key])}")
    return changes


def check_resume_settings(cfg: DictConfig, checkpoint: dict[str, Any], path: str | Path) -> None:
    """A resume (``ckpt_path`` with ``fit``) must keep the settings the checkpoint was trained with: a changed loss
    or model trains another run than the one resumed, a changed batch size skips samples never trained (the
    resumable sampler counts batches). Refused with the changes, unless ``resume_changed=allow`` (a warning)."""
    policy = str(cfg.get("resume_changed", "refuse"))
    if policy not in ("refuse", "allow"):
        raise ConfigError(f"resume_changed: must be refuse or allow (got {policy!r})")
    saved = checkpoint.get(SETTINGS_KEY)
    if not isinstance(saved, dict):
        warnings.warn(
            f"ckpt_path: {path} holds no record of the settings it was trained with (written before checkpoints kept "
            "one); resuming without checking that the loss, batch size, model and seed are unchanged",
            stacklevel=2,
        )
        return
    changes = setting_changes(saved, run_settings(cfg))
    if not changes:
        return
    listed = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
    if policy == "allow":
        warnings.warn(
            f"ckpt_path: resuming with changed settings (resume_changed=allow), so the run does not continue exactly "
            f"as it was trained: the checkpoint was trained with {listed}",
            stacklevel=2,
        )
        return
    raise ConfigError(
        f"ckpt_path: the checkpoint was trained with {listed}. A resumed run continues exactly only with the settings "
        f"it was trained with (they are in {path} and in its run folder's .hydra/config.yaml): resume with them, "
        "or set resume_changed=allow to continue anyway"
    )


def check_checkpoint_fits(task: nn.Module, checkpoint: dict[str, Any] | None, path: str | Path | None) -> None:
    """The checkpoint's weights must fit the built task: the same keys (unless the task loads non-strictly) and
    shapes. Lightning would load them after the data, and fail with a KeyError or a size mismatch."""
    if checkpoint is None:
        return
    saved, own = checkpoint.get("state_dict") or {}, task.state_dict()
    strict = getattr(task, "strict_loading", True)

    def listed(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    def shape(value: Any) -> list[int] | None:
        return list(value.shape) if isinstance(value, Tensor) and not isinstance(value, UninitializedParameter) else None

    missing = [k for k in own if k not in saved] if strict else []
    unexpected = [k for k in saved if k not in own] if strict else []
    other = [k for k in own if k in saved and None not in (shape(own[k]), shape(saved[k])) and shape(own[k]) != shape(saved[k])]
    if not saved:
        problems = ["it holds no weights (an empty state_dict)"]
    else:
        problems = [f"{len(missing)} weights missing ({listed(missing)})"] if missing else []
        problems += [f"{len(unexpected)} weights this network does not have ({listed(unexpected)})"] if unexpected else []
        problems += (
            [
                f"{len(other)} of another shape ("
                + ", ".join(f"{k} {shape(saved[k])} in the checkpoint, {shape(own[k])} here" for k in other[:3])
                + (f" and {len(other) - 3} more" if len(other) > 3 else "")
                + ")"
            ]
            if other
            else []
        )
    if not problems:
        return
    raise ConfigError(
        f"ckpt_path: {path} does not fit the {type(task).__name__} this config builds: {'; '.join(problems)}. It was "
        "written by another task or model (or another model size): use the task, model and data settings it was "
        "trained with (its run folder's .hydra/config.yaml), a checkpoint of this network, or ckpt_path=null to start "
        "afresh"
    )


# ----- writing and reading checkpoints --------------------------------------------------------
def write_error(path: Path, err: OSError | RuntimeError) -> RunError:
    """The message for a checkpoint that could not be written: why, and what to do."""
    where = f"{path} keeps the previous checkpoint" if path.exists() else "no earlier checkpoint was touched"
    what = write_failed(path, err)
    if what.startswith("no space"):
        return RunError(
            f"checkpoint: {what}; free some space or write checkpoints elsewhere with "
            f"callbacks.model_checkpoint.dirpath=<folder>. {where}."
        )
    return RunError(
        f"checkpoint: {what}; choose a writable folder with callbacks.model_checkpoint.dirpath=<folder> or "
        f"hydra.run.dir=<folder>. {where}."
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file beside it, fsync, then rename it into place.

    A process killed while saving leaves the previous file whole (a rename is atomic on POSIX);
    Lightning's own save goes through a temporary file in the system temp folder, which is a copy,
    not a rename, when that folder is on another disk. A full disk (an OSError, or PyTorch's RuntimeError
    "PytorchStreamWriter failed writing file ...: file write failed") or a read-only folder is a
    ``RunError`` that names the file and the setting to change.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote storage: fsspec's own transaction
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-save
                stale.unlink(missing_ok=True)
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fsync_folder(path.parent)
        except (OSError, RuntimeError) as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, RuntimeError) and not torch_write_failed(err):
                raise
            raise write_error(path, err) from err
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return None


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_checkpoint(path: str | Path, setting: str = "ckpt_path") -> dict[str, Any]:
    """Open a checkpoint the way training will (``weights_only=True``); a ConfigError says what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{setting}: {path} does not exist{' (it is a folder)' if path.is_dir() else ''}; give the path of a "
            f"checkpoint file (e.g. logs/<task>/runs/<date>/checkpoints/last.ckpt), or {setting}=null to start afresh"
        )
    instead = f"Use another file (checkpoints/best.ckpt or an earlier one), or {setting}=null to start afresh"
    if not zipfile.is_zipfile(path):
        raise ConfigError(
            f"{setting}: {path} is not a readable checkpoint (not the zip archive torch.save writes: truncated, "
            f"or another kind of file). {instead}"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"{setting}: {path} holds Python objects that loading with weights_only=True refuses (it was not written "
            f"by this train.py); load it only if you trust its source. {instead}"
        ) from None
    except Exception as err:  # a damaged archive
        text = str(err).strip()
        reason = text.splitlines()[0].split(". ")[0][:160] if text else type(err).__name__
        raise ConfigError(f"{setting}: {path} is not a readable checkpoint ({reason}). {instead}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{setting}: {path} is not a Lightning checkpoint (no 'state_dict'); give a .ckpt written by train.py")
    return checkpoint
