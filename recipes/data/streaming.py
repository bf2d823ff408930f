"""Samples that stay on disk: decoded and augmented per sample in DataLoader workers, in a resumable seeded order.

For a dataset too large to hold decoded in memory (``data.storage=stream``, or ``auto`` when it would not fit);
``Streaming`` gives a folder format (image_folder, mask_folder, voc_folder, coco_folder) the settings and the loaders.
``SeededOrder`` is the training order: a permutation seeded by ``(seed, epoch)`` (``DistributedSampler``'s,
strided over ranks), starting after the batches this epoch has already trained (Lightning's restored loop
counters), each index paired with its own augmentation seed drawn from ``(seed, epoch, index)``. A sample's
random crop and flip are therefore the same whichever worker decodes it, how many workers there are, and whether
the run was killed and resumed mid-epoch. ``StreamingLoader`` is a ``DataLoader`` whose ``state_dict`` holds the
seed: Lightning saves it in the checkpoint (and does not warn about a mid-epoch resume) and gives it back when it
builds the loader after restoring the checkpoint; when it builds the loader earlier (a scheduler asking for the
number of steps), the seed is the run's own (``torch.initial_seed()`` after seeding), which a resume keeps.
Under DDP Lightning keeps a ``DistributedSampler`` it is given (``use_distributed_sampler`` replaces only others), so
each rank streams its own shard of the one order (tests/test_distributed.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from losses.errors import check, check_number

GB = 1024**3
STORAGES = ("auto", "memory", "stream")
log = logging.getLogger(__name__)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch: distinct per (seed, epoch, index), independent of workers."""
    return ((seed * 1_000_003 + epoch) * 1_000_000_007 + index) % 2**62


class SeededOrder(DistributedSampler):
    """``(index, augmentation seed)`` pairs in a permutation seeded by ``(seed, epoch)``, after the ``consumed()``
    samples already trained this epoch; ``epoch()`` and ``consumed()`` read the trainer's loop counters."""

    def __init__(
        self, count: int, seed: int, epoch: Callable[[], int], consumed: Callable[[], int], num_replicas: int = 1, rank: int = 0
    ) -> None:
        super().__init__(range(count), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.epoch_of, self.consumed = epoch, consumed

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        self.set_epoch(self.epoch_of())
        indices = list(super().__iter__())[self.consumed() :]
        return iter([(i, sample_seed(self.seed, self.epoch, i)) for i in indices])

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed = int(state["seed"])


class StreamingLoader(DataLoader):
    """A ``DataLoader`` that Lightning sees as stateful (its checkpointed state is its ``SeededOrder``'s seed), whose
    iterator starts its workers at the first batch: Lightning calls ``iter()`` before it restores the loop counters
    when a scheduler asks for the number of steps (OneCycleLR), and workers would read the order then."""

    def __iter__(self) -> Iterator[Any]:
        yield from super().__iter__()

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict() if isinstance(self.sampler, SeededOrder) else {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if isinstance(self.sampler, SeededOrder) and state:
            self.sampler.load_state_dict(state)


class Streamed(Dataset):
    """Item ``i`` (or ``(i, seed)``): sample ``i`` of ``samples`` (a tuple of tensors, the uint8 image first); given a
    seed, passed through ``transform(*sample)`` drawn from that seed (the global RNG is left as it was)."""

    def __init__(self, samples: Dataset, transform: Callable[..., tuple] | None = None) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, ...]:
        i, seed = key if isinstance(key, tuple) else (key, None)
        sample = self.samples[i]
        if seed is not None and self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                sample = self.transform(*sample)
        return sample


def decode_all(samples: Dataset) -> tuple[Tensor, ...]:
    """Every sample of ``samples`` stacked, one tensor per field: what ``storage=memory`` holds."""
    return tuple(torch.stack(field) for field in zip(*(samples[i] for i in range(len(samples)))))


def running_stats(loader: DataLoader) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (unbiased) std in [0, 1] units of a loader's uint8 images, in one pass."""
    total = squares = None
    count = 0
    for images, *_ in loader:
        x = images.double().div_(255)
        sums, sq = x.sum((0, 2, 3)), x.square().sum((0, 2, 3))
        total, squares = (sums, sq) if total is None else (total + sums, squares + sq)
        count += x.numel() // x.shape[1]
    mean = total / count
    var = (squares - count * mean.square()) / max(count - 1, 1)
    return mean.float(), var.clamp_min(0).sqrt().float()


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``; elsewhere the free pages)."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def amount(size: float) -> str:
    """Bytes in GB, or in MB below a hundredth of a GB."""
    return f"{size / GB:.2f} GB" if size >= GB / 100 else f"{size / 1024**2:.2f} MB"


def choose_storage(decoded_bytes: int, limit_gb: float | None) -> tuple[str, str]:
    """``memory`` when the decoded samples fit under ``limit_gb`` (null: half the available memory), else ``stream``;
    and the reason, for the log line."""
    if limit_gb is None:
        limit, source = available_memory() / 2, "half the memory available"
    else:
        limit, source = limit_gb * GB, "data.memory_limit_gb"
    storage = "memory" if decoded_bytes <= limit else "stream"
    relation = "within" if storage == "memory" else "more than"
    return storage, f"the decoded images take {amount(decoded_bytes)}, {relation} {amount(limit)} ({source})"


def seeded_order(count: int, seed: int, trainer: Any, batch_size: int) -> SeededOrder:
    """The training order of ``count`` samples, following ``trainer``'s loop counters (epoch 0 from the start without one)."""
    if trainer is None:
        return SeededOrder(count, seed, epoch=lambda: 0, consumed=lambda: 0)
    fit_loop = trainer.fit_loop
    return SeededOrder(
        count,
        seed,
        epoch=lambda: fit_loop.epoch_progress.current.processed,
        consumed=lambda: fit_loop.epoch_loop.batch_progress.current.ready * batch_size,
        num_replicas=trainer.world_size,
        rank=trainer.global_rank,
    )


class Streaming:
    """What a format that may stream adds to its in-memory datamodule (list it first among the bases).

    ``storage``: ``memory`` is the base's path (decoded once, held); ``stream`` leaves the samples on disk, decoded
    in ``num_workers`` workers (``pin_memory``, ``persistent_workers``), in training in the seeded, resumable order
    with ``worker_transform`` drawn per sample; ``auto`` streams when ``decoded_size()`` exceeds ``memory_limit_gb``
    (null: half the memory available) and logs which it chose. A format gives ``decoded_size()`` and
    ``streamed_splits()`` (per-sample datasets, the same samples as its in-memory splits, in the same order).
    """

    streamable = True  # False: a format built on the decoded splits (pairs), held in memory
    given_stats: tuple[Tensor, Tensor] | None = None  # normalisation statistics set by the user: no pass to find them

    def storage_settings(self, storage: str, limit_gb: float | None, pin_memory: bool, persistent_workers: bool) -> None:
        """The storage settings checked, and ``auto`` resolved (with one log line saying which and why)."""
        check(self.owner, storage in STORAGES, f"storage must be one of {', '.join(STORAGES)}", storage)
        if limit_gb is not None:
            check_number(self.owner, "memory_limit_gb", limit_gb, low=0, low_open=True)
        check(self.owner, isinstance(pin_memory, bool), "pin_memory must be true or false", pin_memory)
        check(self.owner, isinstance(persistent_workers, bool), "persistent_workers must be true or false", persistent_workers)
        need = "persistent_workers keeps DataLoader workers between epochs, so it needs num_workers > 0; set data.num_workers=2"
        check(self.owner, not persistent_workers or self.num_workers > 0, f"{need} or data.persistent_workers=false", True)
        self.pin_memory, self.persistent_workers, self.streamed = pin_memory, persistent_workers, {}
        if not self.streamable:
            need = f"storage must be auto or memory: {self.name} draws its tuples from images held in memory"
            check(self.owner, storage != "stream", need, storage)
            storage = "memory"
        elif storage == "auto":
            size, holds = self.decoded_size()
            storage, why = choose_storage(size, limit_gb)
            log.info("%s: storage=auto chose %s: %s (%s)", self.owner, storage, why, holds)
        self.storage = storage

    def decoded_size(self) -> tuple[int, str]:
        """Bytes the decoded splits would take in memory, and what they hold (``"96 images"``), from no decoding."""
        raise NotImplementedError(f"{type(self).__name__} must implement decoded_size()")

    def streamed_splits(self) -> dict[str, Streamed]:
        """Every split as a per-sample dataset (the training split without its ``transform``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement streamed_splits()")

    def worker_transform(self) -> Callable[..., tuple] | None:
        """The training augmentation of one uint8 sample, drawn in a worker; None: none."""
        return None

    def setup(self, stage: str | None = None) -> None:
        """Memory: every split decoded (the base's); stream: every split listed, the statistics in one pass."""
        if self.storage == "memory":
            super().setup(stage)
        elif not self.streamed:
            splits = self.streamed_splits()
            self.register_stats(*(self.given_stats or running_stats(self.stream_loader(splits["train"], train=False))))
            splits["train"].transform = self.worker_transform()
            self.streamed = splits

    def streams(self, split: str, train: bool) -> Streamed | None:
        """The streamed dataset that serves this loader, or None when it comes from memory."""
        return self.streamed.get(split) if self.storage == "stream" else None

    def loader(self, split: str, train: bool) -> Any:
        dataset = self.streams(split, train)
        return super().loader(split, train) if dataset is None else self.stream_loader(dataset, train)

    def stream_loader(self, dataset: Streamed, train: bool) -> DataLoader:
        """Batches decoded in ``num_workers`` workers; in training in the seeded, resumable order (``SeededOrder``)."""
        batch_size = self.batch_size if train else self.eval_batch_size
        seed = torch.initial_seed()
        order = seeded_order(len(dataset), seed, self.trainer, batch_size) if train else None
        return StreamingLoader(
            dataset,
            batch_size=batch_size,
            sampler=order,
            generator=torch.Generator().manual_seed(seed),  # worker seeds: not drawn from the global RNG (exact resume)
            drop_last=train and len(dataset) > batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )
