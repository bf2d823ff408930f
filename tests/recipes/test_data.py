"""Data resolution: embedded mnist5k, IDX files on disk, and the errors when data is missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from losses import ConfigError
from recipes.data.images import ImageDataModule
from recipes.data.sources import load_mnist5k, read_idx, stratified_split
from tests.helpers.data import write_fake_mnist, write_idx


def test_mnist5k_is_5000_real_digits_500_per_class(data_dir):
    images, labels = load_mnist5k(data_dir)
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [500] * 10
    assert 25 < images.float().mean() < 45  # real ink, not noise (MNIST's mean pixel is ~33)


def test_mnist5k_split_is_stratified_disjoint_and_seeded(data_dir):
    dm = ImageDataModule(data_dir=str(data_dir))
    dm.setup()
    sizes = {k: len(v[1]) for k, v in dm.splits.items()}
    assert sizes == {"train": 4000, "val": 500, "test": 500}
    assert torch.bincount(dm.splits["test"][1]).tolist() == [50] * 10
    _, labels = load_mnist5k(data_dir)
    parts = stratified_split(labels, (0.1, 0.1), seed=0)
    assert len(set(torch.cat(parts).tolist())) == 5000
    assert torch.equal(parts[0], stratified_split(labels, (0.1, 0.1), seed=0)[0])
    assert not torch.equal(parts[0], stratified_split(labels, (0.1, 0.1), seed=1)[0])


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_loads_from_idx_files_in_data_dir(tmp_path, compress):
    write_fake_mnist(tmp_path / "MNIST" / "raw", compress=compress)
    dm = ImageDataModule(dataset="mnist", data_dir=str(tmp_path), val_fraction=0.2)
    dm.setup()
    assert len(dm.splits["test"][1]) == 20
    assert len(dm.splits["train"][1]) + len(dm.splits["val"][1]) == 60
    images, labels = dm.splits["train"]
    assert torch.equal(images[:, 0, 0, 0].long(), labels)


def test_fashion_mnist_loads_from_its_own_folder(tmp_path):
    write_fake_mnist(tmp_path / "fashion_mnist")
    dm = ImageDataModule(dataset="fashion_mnist", data_dir=str(tmp_path), val_fraction=0.2)
    dm.setup()
    assert dm.splits["test"][0].shape == (20, 1, 28, 28)


def test_missing_dataset_says_what_to_do(tmp_path):
    dm = ImageDataModule(dataset="mnist", data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="data 'mnist': not found in .*data.download=true"):
        dm.setup()


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.zeros((4, 28, 28)), compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ConfigError, match="truncated"):
        read_idx(path)


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"dataset must be one of mnist5k, mnist, fashion_mnist, cifar10 \(got 'svhn'\)"):
        ImageDataModule(dataset="svhn")


def test_augmentation_only_shifts_content():
    from recipes.data.augment import random_translate

    images = torch.zeros(8, 1, 10, 10)
    images[:, :, 4:6, 4:6] = 1.0
    shifted = random_translate(images, 2, generator=torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    assert torch.equal(shifted.sum((1, 2, 3)), images.sum((1, 2, 3)))  # nothing cut off, nothing added
    assert not torch.equal(shifted, images)
