"""Images that stay on disk: decoded and augmented per sample in DataLoader workers, in a resumable seeded order.

For a dataset too large to hold decoded in memory (``data.storage=stream``, or ``auto`` when it would not fit).
``SeededOrder`` is the training order: a permutation seeded by ``(seed, epoch)`` (``DistributedSampler``'s,
strided over ranks), starting after the batches this epoch has already trained (Lightning's restored loop
counters), each index paired with its own augmentation seed drawn from ``(seed, epoch, index)``. A sample's
random crop and flip are therefore the same whichever worker decodes it, how many workers there are, and whether
the run was killed and resumed mid-epoch. ``StreamingLoader`` is a ``DataLoader`` whose ``state_dict`` holds the
seed: Lightning saves it in the checkpoint (and does not warn about a mid-epoch resume) and gives it back when it
builds the loader after restoring the checkpoint; when it builds the loader earlier (a scheduler asking for the
number of steps), the seed is the run's own (``torch.initial_seed()`` after seeding), which a resume keeps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

GB = 1024**3


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
    """Item ``i`` (or ``(i, seed)``): image ``rows[i]`` of ``images`` as uint8 with ``labels[i]``; given a seed,
    passed through ``transform`` drawn from that seed (the global RNG is left as it was)."""

    def __init__(self, images: Dataset, rows: list[int], labels: Tensor, transform: Callable[[Tensor], Tensor] | None) -> None:
        self.images, self.rows, self.labels, self.transform = images, rows, labels, transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, Tensor]:
        i, seed = key if isinstance(key, tuple) else (key, None)
        image = self.images[self.rows[i]][0]
        if seed is not None and self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                image = self.transform(image)
        return image, self.labels[i]


def running_stats(loader: DataLoader) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (unbiased) std in [0, 1] units of a loader's uint8 images, in one pass."""
    total = squares = None
    count = 0
    for images, _ in loader:
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
    """``memory`` when the decoded images fit under ``limit_gb`` (null: half the available memory), else ``stream``;
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
