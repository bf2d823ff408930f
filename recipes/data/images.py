"""Image classification data held in memory as uint8 and normalised/augmented per batch on the device."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from losses.errors import check, check_integer, check_interval
from recipes.data.augment import random_hflip, random_translate
from recipes.data.base import InMemoryDataModule, check_fractions
from recipes.data.sources import TORCHVISION_NAMES, Arrays, load_mnist5k, load_torchvision_dataset, stratified_split
from recipes.data.variants import long_tail_counts, long_tail_indices, noisy_labels

DATASETS = ("mnist5k", *TORCHVISION_NAMES)
MNIST5K_PER_CLASS = 500
# what each dataset holds: data.channels, data.image_size and data.num_classes must say the same
HOLDS = {
    "mnist5k": {"channels": 1, "image_size": 28, "num_classes": 10},
    "mnist": {"channels": 1, "image_size": 28, "num_classes": 10},
    "fashion_mnist": {"channels": 1, "image_size": 28, "num_classes": 10},
    "cifar10": {"channels": 3, "image_size": 32, "num_classes": 10},
}


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


class ImageDataModule(InMemoryDataModule):
    """mnist5k (embedded), mnist, fashion_mnist or cifar10 as ``(image, label)`` batches.

    Images stay uint8 until a batch reaches its device; there they are scaled, normalised with the
    training split's mean and std, and (in training) shifted by up to ``shift`` pixels and flipped.
    ``imbalance`` (e.g. 10 or 100) subsamples the training split to a long tail and ``label_noise``
    replaces that fraction of its labels by another class; both follow ``split_seed``, and validation
    and test stay balanced and clean.
    """

    fields = ("images", "labels")
    datasets: tuple[str, ...] = DATASETS  # what ``dataset`` may name; a format of its own reads its own
    batches = ("images+labels",)

    def __init__(
        self,
        name: str | None = None,
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
        num_classes: int | None = None,
        channels: int | None = None,
        image_size: int | None = None,
        imbalance: float | None = None,
        label_noise: float = 0.0,
    ) -> None:
        super().__init__(name or dataset, batch_size, eval_batch_size, num_workers, on_device)
        check(self.owner, dataset in self.datasets, f"dataset must be one of {', '.join(self.datasets)}", dataset)
        check_fractions(self.owner, val_fraction, test_fraction)
        shape = self.held(dataset, {"channels": channels, "image_size": image_size, "num_classes": num_classes})
        channels, image_size, num_classes = shape["channels"], shape["image_size"], shape["num_classes"]
        self.check_augmentation(shift, hflip, image_size)
        check(self.owner, isinstance(download, bool), "download must be true or false", download)
        check_integer(self.owner, "split_seed", split_seed, low=0)
        number = isinstance(imbalance, (int, float)) and not isinstance(imbalance, bool)
        ratio = imbalance is None or (number and math.isfinite(imbalance) and imbalance >= 1)
        check(self.owner, ratio, "imbalance must be null or a finite ratio >= 1 of the largest to the smallest class", imbalance)
        self.label_noise = check_interval(self.owner, "label_noise", label_noise, 0, 1, low_open=False)
        self.dataset, self.data_dir, self.download = dataset, data_dir, download
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.shift, self.hflip, self.imbalance = shift, hflip, imbalance
        self.num_classes, self.channels, self.image_size = num_classes, channels, image_size
        if dataset == "mnist5k":  # its split sizes are known before it loads: 500 digits per class
            held_out = round(test_fraction * MNIST5K_PER_CLASS) + round(val_fraction * MNIST5K_PER_CLASS)
            self.check_imbalance_leaves_every_class_a_sample(MNIST5K_PER_CLASS - held_out)

    def check_augmentation(self, shift: int, hflip: bool, image_size: int) -> None:
        """``shift`` pixels in [0, image_size) (a negative one would turn augmentation off); ``hflip`` a bool."""
        check_integer(self.owner, "image_size", image_size, low=1)
        check_integer(self.owner, "shift", shift, low=0)
        check(self.owner, shift < image_size, f"shift must be < image_size ({image_size}), or images leave their frame", shift)
        check(self.owner, isinstance(hflip, bool), "hflip must be true or false", hflip)

    def held(self, dataset: str, given: dict[str, int | None]) -> dict[str, int | None]:
        """``channels``, ``image_size`` and ``num_classes``: what a torchvision dataset holds (null takes it; another
        value is refused), or, for a format that reads its own (image_folder), the values it gives."""
        holds = HOLDS.get(dataset)
        if holds is None:
            return given
        for key, value in given.items():
            need = f"{key} must be {holds[key]}, what dataset {dataset} holds; set data.{key}={holds[key]}"
            check(self.owner, value in (None, holds[key]), need, value)
        return dict(holds)

    def prepare_data(self) -> None:
        if self.download and self.dataset != "mnist5k":
            load_torchvision_dataset(self.dataset, self.data_dir, allow_download=True)

    def load(self) -> dict[str, Arrays]:
        """The seeded, stratified splits of ``dataset``, the training split made harder as asked."""
        splits = self.source_splits()
        splits["train"] = self.harder_training_split(*splits["train"])
        return splits

    def source_splits(self) -> dict[str, Arrays]:
        """The dataset's splits as read, before any variant; a format of its own (image_folder) reads its own."""
        return load_splits(self.dataset, self.data_dir, self.download, self.val_fraction, self.test_fraction, self.split_seed)

    def harder_training_split(self, images: Tensor, labels: Tensor) -> Arrays:
        """The training split, long-tailed when ``imbalance`` is set, with ``label_noise`` of its labels changed."""
        if self.imbalance is not None:
            counts = torch.bincount(labels.flatten().long().cpu(), minlength=self.num_classes)
            self.check_imbalance_leaves_every_class_a_sample(int(counts[: self.num_classes].min()))
            keep = long_tail_indices(labels, self.num_classes, self.imbalance, self.split_seed)
            images, labels = images[keep], labels[keep]
        if self.label_noise:
            labels = noisy_labels(labels, self.label_noise, self.num_classes, self.split_seed)
        return images, labels

    def check_imbalance_leaves_every_class_a_sample(self, n_max: int) -> None:
        """The rarest class keeps ``round(n_max / imbalance) >= 1`` samples, i.e. ``imbalance < 2 n_max``."""
        if self.imbalance is not None and min(long_tail_counts(n_max, self.num_classes, self.imbalance)) < 1:
            need = (
                f"imbalance must be < {2 * n_max}: the smallest class has {n_max} training samples and the rarest "
                f"class keeps {n_max} / imbalance of them, rounded, so a larger ratio leaves it none"
            )
            check(self.owner, False, need, self.imbalance)

    def augment(self, images: Tensor) -> Tensor:
        """Training-time augmentation: random shifts (and mirror images where ``hflip``)."""
        images = random_translate(images, self.shift)
        return random_hflip(images) if self.hflip else images
