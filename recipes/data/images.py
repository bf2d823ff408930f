"""Image classification data held in memory as uint8 and normalised/augmented per batch on the device."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from losses.errors import check, check_interval
from recipes.data.augment import random_hflip, random_translate
from recipes.data.base import InMemoryDataModule, check_fractions
from recipes.data.sources import TORCHVISION_NAMES, Arrays, load_mnist5k, load_torchvision_dataset, stratified_split
from recipes.data.variants import long_tail_indices, noisy_labels

DATASETS = ("mnist5k", *TORCHVISION_NAMES)
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
        check(self.owner, dataset in DATASETS, f"dataset must be one of {', '.join(DATASETS)}", dataset)
        check_fractions(self.owner, val_fraction, test_fraction)
        ratio = imbalance is None or (isinstance(imbalance, (int, float)) and not isinstance(imbalance, bool) and imbalance >= 1)
        check(self.owner, ratio, "imbalance must be null or a ratio >= 1 of the largest to the smallest class", imbalance)
        self.label_noise = check_interval(self.owner, "label_noise", label_noise, 0, 1, low_open=False)
        self.dataset, self.data_dir, self.download = dataset, data_dir, download
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.shift, self.hflip, self.imbalance = shift, hflip, imbalance
        given = {"channels": channels, "image_size": image_size, "num_classes": num_classes}
        for key, value in given.items():  # null: what the dataset holds
            held = HOLDS[dataset][key]
            need = f"{key} must be {held}, what dataset {dataset} holds; set data.{key}={held}"
            check(self.owner, value in (None, held), need, value)
        holds = HOLDS[dataset]
        self.num_classes, self.channels, self.image_size = holds["num_classes"], holds["channels"], holds["image_size"]

    def prepare_data(self) -> None:
        if self.download and self.dataset != "mnist5k":
            load_torchvision_dataset(self.dataset, self.data_dir, allow_download=True)

    def load(self) -> dict[str, Arrays]:
        """The seeded, stratified splits of ``dataset``, the training split made harder as asked."""
        splits = load_splits(self.dataset, self.data_dir, self.download, self.val_fraction, self.test_fraction, self.split_seed)
        splits["train"] = self.harder_training_split(*splits["train"])
        return splits

    def harder_training_split(self, images: Tensor, labels: Tensor) -> Arrays:
        """The training split, long-tailed when ``imbalance`` is set, with ``label_noise`` of its labels changed."""
        if self.imbalance is not None:
            keep = long_tail_indices(labels, self.num_classes, self.imbalance, self.split_seed)
            images, labels = images[keep], labels[keep]
        if self.label_noise:
            labels = noisy_labels(labels, self.label_noise, self.num_classes, self.split_seed)
        return images, labels

    def augment(self, images: Tensor) -> Tensor:
        """Training-time augmentation: random shifts (and mirror images where ``hflip``)."""
        images = random_translate(images, self.shift)
        return random_hflip(images) if self.hflip else images
