"""What every in-memory datamodule shares: splits held as tensors, their loaders, image normalisation, checks.

A format writes only its reader: a subclass names its batch ``fields`` and implements ``load()``, which
returns ``{"train": (...), "val": (...), "test": (...)}``, one tensor per field, the samples along dim 0.
The base checks the splits, keeps the training images' per-channel mean and std, moves the splits to the
training GPU when ``on_device`` allows (one process), and batches them there (``DeviceBatches``) or
through a CPU ``DataLoader``. Every uint8 ``[N, C, H, W]`` tensor of a batch is an image: it is scaled,
normalised and, in training, augmented (``augment``) once the batch reaches its device. The statistics go into
every checkpoint (``state_dict``), so predict.py normalises with the trained run's, without reading its data.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from losses.errors import check, check_integer, check_interval
from recipes.data.device import DeviceBatches

SPLITS = ("train", "val", "test")
Splits = dict[str, tuple[Tensor, ...]]


def is_image(t: Tensor) -> bool:
    """uint8 ``[N, C, H, W]``: how images are held until a batch reaches its device."""
    return t.dtype == torch.uint8 and t.ndim == 4


def channel_stats(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of uint8 images scaled to [0, 1]."""
    x = images.float().div_(255)
    return x.mean([0, 2, 3]), x.std([0, 2, 3])


def check_fractions(owner: str, val_fraction: float, test_fraction: float) -> None:
    """The shares of the data held out for validation and test, each in (0, 0.5)."""
    check_interval(owner, "val_fraction", val_fraction, 0, 0.5)
    check_interval(owner, "test_fraction", test_fraction, 0, 0.5)


class InMemoryDataModule(L.LightningDataModule):
    """Train/val/test splits held as tensors (``splits[split]`` is one tensor per name in ``fields``).

    ``name`` is the config option (``data=<name>``) and names this datamodule in every message.
    ``slice_on_cpu``: in one process, cut batches out of CPU tensors too (no DataLoader; cheaper for
    small rows, with ``DeviceBatches``' own shuffle order).
    """

    fields: tuple[str, ...] = ()
    batches: tuple[str, ...] = ()  # the batches it provides, by name (recipes/run/combinations.py); (): unchecked
    slice_on_cpu: bool = False

    def __init__(
        self, name: str, batch_size: int, eval_batch_size: int, num_workers: int = 0, on_device: str | bool = "auto"
    ) -> None:
        super().__init__()
        self.name, self.owner = name, f"data '{name}'"
        self.batch_size = check_integer(self.owner, "batch_size", batch_size, low=1)
        self.eval_batch_size = check_integer(self.owner, "eval_batch_size", eval_batch_size, low=1)
        self.num_workers = check_integer(self.owner, "num_workers", num_workers, low=0)
        check(self.owner, on_device in ("auto", True, False), "on_device must be auto, true or false", on_device)
        self.on_device = on_device
        self.splits: Splits = {}

    def load(self) -> Splits:
        """The format's reader: every split, as one CPU tensor per name in ``fields``."""
        raise NotImplementedError(f"{type(self).__name__} must implement load()")

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = self.load()
        self.check_splits(splits)
        images = splits["train"][0]
        if is_image(images):
            self.register_stats(*channel_stats(images))
        device = self.resident_device()
        if device.type != "cpu":
            splits = {split: tuple(t.to(device) for t in tensors) for split, tensors in splits.items()}
        self.splits = splits

    def check_splits(self, splits: Splits) -> None:
        """Every split is there, with one tensor per field, all of the same non-zero length."""
        check(self.owner, set(splits) == set(SPLITS), "the reader must return the splits train, val and test", sorted(splits))
        for split, tensors in splits.items():
            check(self.owner, len(tensors) == len(self.fields), f"each split holds {', '.join(self.fields)}", len(tensors))
            sizes = sorted({len(t) for t in tensors})
            check(self.owner, len(sizes) == 1 and sizes[0] > 0, f"the {split} split needs samples, as many per field", sizes)

    def field(self, split: str, name: str) -> Tensor:
        """One named tensor of a split, e.g. ``field("train", "boxes")``."""
        return self.splits[split][self.fields.index(name)]

    def resident_device(self) -> torch.device:
        """Where the splits live: the training GPU when ``on_device`` allows (one process), else the CPU."""
        trainer = self.trainer
        if self.on_device is False or trainer is None:
            return torch.device("cpu")
        device = trainer.strategy.root_device
        if self.on_device == "auto" and (device.type != "cuda" or trainer.world_size > 1):
            return torch.device("cpu")
        return device

    def register_stats(self, mean: Tensor, std: Tensor) -> None:
        """Keep the per-channel statistics used to normalise every batch."""
        self.mean = mean.view(1, -1, 1, 1)
        self.std = std.clamp_min(1e-6).view(1, -1, 1, 1)

    def state_dict(self) -> dict[str, Tensor]:
        """What Lightning saves in a checkpoint: the normalisation statistics (none without images)."""
        if not hasattr(self, "mean"):
            return {}
        return {"mean": self.mean.flatten().cpu(), "std": self.std.flatten().cpu()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """The statistics a checkpoint holds, in place of those of the data as it is now."""
        if "mean" in state:
            self.register_stats(state["mean"], state["std"])

    def loader(self, split: str, train: bool) -> DataLoader | DeviceBatches:
        """Batches of one split, shuffled (by the seeded global RNG) when training."""
        tensors = self.splits[split]
        batch_size = self.batch_size if train else self.eval_batch_size
        one_process = self.trainer is None or self.trainer.world_size == 1
        if tensors[0].device.type != "cpu" or (self.slice_on_cpu and one_process):
            return DeviceBatches(tensors, batch_size, shuffle=train, drop_last=train)
        return DataLoader(
            TensorDataset(*tensors),
            batch_size=batch_size,
            shuffle=train,
            drop_last=train and len(tensors[0]) > batch_size,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        return self.loader("train", train=True)

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self.loader("val", train=False)

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self.loader("test", train=False)

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 images to normalised float32 on their own device."""
        if self.mean.device != images.device:  # once: the statistics follow the batches to their device
            self.mean, self.std = self.mean.to(images.device), self.std.to(images.device)
        return images.float().div_(255).sub_(self.mean).div_(self.std)  # in place: no new batch-sized tensors

    def augment(self, images: Tensor) -> Tensor:
        """Training-time augmentation of normalised images; none unless a format adds it."""
        return images

    def on_after_batch_transfer(self, batch: Sequence[Tensor], dataloader_idx: int) -> tuple[Tensor, ...]:
        """Normalise (and in training augment) every image tensor of the batch; the rest passes through."""
        training = self.trainer is not None and self.trainer.training
        out = []
        for t in batch:
            if is_image(t):
                t = self.normalize(t)
                t = self.augment(t) if training else t
            out.append(t)
        return tuple(out)
