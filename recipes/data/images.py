"""Image classification data held in memory as uint8 and normalised/augmented per batch on the device."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from losses.errors import ConfigError
from recipes.data.augment import random_hflip, random_translate
from recipes.data.device import DeviceBatches
from recipes.data.sources import TORCHVISION_NAMES, Arrays, load_mnist5k, load_torchvision_dataset, stratified_split
from recipes.data.variants import long_tail_indices, noisy_labels

DATASETS = ("mnist5k", *TORCHVISION_NAMES)


def load_splits(
    dataset: str, data_dir: str | Path, download: bool, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, Arrays]:
    """Train/val/test arrays of ``dataset``; stratified and seeded where the dataset has no test split."""
    if dataset == "mnist5k":
        images, labels = load_mnist5k(data_dir)
        test, val, train = stratified_split(labels, (test_fraction, val_fraction), seed)
        return {
            "train": (images[train], labels[train]),
            "val": (images[val], labels[val]),
            "test": (images[test], labels[test]),
        }
    found = load_torchvision_dataset(dataset, data_dir, download)
    images, labels = found["train"]
    val, train = stratified_split(labels, (val_fraction,), seed)
    return {"train": (images[train], labels[train]), "val": (images[val], labels[val]), "test": found["test"]}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ImageDataModule(L.LightningDataModule):
    """mnist5k (embedded), mnist, fashion_mnist or cifar10 as ``(image, label)`` batches.

    Images stay uint8 until a batch reaches its device; there they are scaled, normalised with the
    training split's mean and std, and (in training) shifted by up to ``shift`` pixels and flipped.
    ``imbalance`` (e.g. 10 or 100) subsamples the training split to a long tail and ``label_noise``
    replaces that fraction of its labels by another class; both follow ``split_seed``, and validation
    and test stay balanced and clean.
    """

    def __init__(
        self,
        dataset: str = "mnist5k",
        data_dir: str = "data",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        shift: int = 2,
        hflip: bool = False,
        download: bool = False,
        num_workers: int = 0,
        on_device: str | bool = "auto",
        split_seed: int = 0,
        num_classes: int = 10,
        channels: int = 1,
        image_size: int = 28,
        imbalance: float | None = None,
        label_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ConfigError(f"data: unknown dataset {dataset!r}; datasets are {', '.join(DATASETS)}")
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"data '{dataset}': {name} must be a positive integer (got {value!r})")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 < value < 0.5:
                raise ConfigError(f"data '{dataset}': {name} must be in (0, 0.5) (got {value!r})")
        self.dataset, self.data_dir, self.download = dataset, data_dir, download
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.shift, self.hflip = shift, hflip
        if on_device not in ("auto", True, False):
            raise ConfigError(f"data '{dataset}': on_device must be auto, true or false (got {on_device!r})")
        self.on_device = on_device
        if imbalance is not None and not (_is_number(imbalance) and imbalance >= 1):
            raise ConfigError(
                f"data '{dataset}': imbalance must be null or a ratio >= 1 of the largest to the smallest class "
                f"(got {imbalance!r})"
            )
        if not (_is_number(label_noise) and 0 <= label_noise < 1):
            raise ConfigError(f"data '{dataset}': label_noise must be a fraction in [0, 1) (got {label_noise!r})")
        self.imbalance, self.label_noise = imbalance, float(label_noise)
        self.device = torch.device("cpu")
        self.num_classes, self.channels, self.image_size = num_classes, channels, image_size
        self.splits: dict[str, Arrays] = {}

    def prepare_data(self) -> None:
        if self.download and self.dataset != "mnist5k":
            load_torchvision_dataset(self.dataset, self.data_dir, allow_download=True)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.splits = load_splits(
            self.dataset, self.data_dir, self.download, self.val_fraction, self.test_fraction, self.split_seed
        )
        self.splits["train"] = self.harder_training_split(*self.splits["train"])
        train_images = self.splits["train"][0].float().div_(255)
        dims = [0, 2, 3]
        self.register_stats(train_images.mean(dims), train_images.std(dims))
        self.device = self.resident_device()
        if self.device.type != "cpu":
            self.splits = {k: (x.to(self.device), y.to(self.device)) for k, (x, y) in self.splits.items()}

    def harder_training_split(self, images: Tensor, labels: Tensor) -> Arrays:
        """The training split, long-tailed when ``imbalance`` is set, with ``label_noise`` of its labels changed."""
        if self.imbalance is not None:
            keep = long_tail_indices(labels, self.num_classes, self.imbalance, self.split_seed)
            images, labels = images[keep], labels[keep]
        if self.label_noise:
            labels = noisy_labels(labels, self.label_noise, self.num_classes, self.split_seed)
        return images, labels

    def resident_device(self) -> torch.device:
        """Where the uint8 data lives: the training GPU when ``on_device`` allows (one process), else the CPU."""
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

    def loader(self, split: str, train: bool) -> DataLoader | DeviceBatches:
        """Batches of one in-memory split, shuffled (by the seeded global RNG) when training."""
        images, labels = self.splits[split]
        if images.device.type != "cpu":
            batch_size = self.batch_size if train else self.eval_batch_size
            return DeviceBatches((images, labels), batch_size, shuffle=train, drop_last=train)
        return DataLoader(
            TensorDataset(images, labels),
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=train and len(labels) > self.batch_size,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", train=False)

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 images to normalised float32 on their own device."""
        x = images.float().div_(255)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def augment(self, images: Tensor) -> Tensor:
        """Training-time augmentation: random shifts (and mirror images where ``hflip``)."""
        images = random_translate(images, self.shift)
        return random_hflip(images) if self.hflip else images

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        images, labels = batch
        images = self.normalize(images)
        if self.trainer is not None and self.trainer.training:
            images = self.augment(images)
        return images, labels
