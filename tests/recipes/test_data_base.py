"""The in-memory datamodule base: a format writes only its reader; every datamodule speaks in one message shape."""

from __future__ import annotations

import types

import pytest
import torch

from losses import ConfigError
from recipes.data.base import InMemoryDataModule
from recipes.data.device import DeviceBatches
from recipes.run.build import instantiate
from tests.helpers.configs import CONFIGS

DATA_CONFIGS = sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml"))


class Squares(InMemoryDataModule):
    """A whole format in a few lines: images that are all one grey value, labelled by that value."""

    fields = ("images", "labels")

    def __init__(self, sizes=(8, 4, 4), batch_size: int = 3, **kwargs) -> None:
        super().__init__("squares", batch_size, eval_batch_size=4, **kwargs)
        self.sizes = sizes

    def load(self):
        def split(n: int, first: int):
            values = torch.arange(first, first + n, dtype=torch.uint8)
            return values.view(-1, 1, 1, 1).expand(-1, 2, 3, 3).clone(), values.long()

        return {"train": split(self.sizes[0], 0), "val": split(self.sizes[1], 100), "test": split(self.sizes[2], 200)}


def fake_trainer(training: bool, world_size: int = 1, device: str = "cpu") -> types.SimpleNamespace:
    """What the datamodule reads of its Trainer: the stage, the process count and the device."""
    strategy = types.SimpleNamespace(root_device=torch.device(device))
    return types.SimpleNamespace(training=training, world_size=world_size, strategy=strategy)


def test_a_reader_alone_gives_shuffled_training_batches_and_ordered_eval_batches():
    dm = Squares()
    dm.setup()
    torch.manual_seed(0)
    train = [labels for _, labels in dm.train_dataloader()]
    assert [len(b) for b in train] == [3, 3]  # the partial last batch is dropped in training
    assert len(set(torch.cat(train).tolist())) == 6 and torch.cat(train).tolist() != list(range(6))
    assert torch.cat([labels for _, labels in dm.val_dataloader()]).tolist() == [100, 101, 102, 103]
    images, labels = dm.train_dataloader().dataset[5]
    assert int(images[0, 0, 0]) == int(labels) == 5  # images and labels stay paired


def test_image_batches_are_normalised_with_the_training_split_statistics():
    dm = Squares()
    dm.setup()
    train = (torch.arange(8.0) / 255).repeat_interleave(9)  # every pixel of the 8 training images, per channel
    assert torch.allclose(dm.mean.flatten(), train.mean().expand(2)) and torch.allclose(dm.std.flatten(), train.std().expand(2))
    dm.trainer = fake_trainer(training=False)
    images, labels = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    assert images.dtype == torch.float32 and labels.dtype == torch.long
    expected = (200 / 255 - train.mean()) / train.std()
    assert torch.allclose(images[0], expected.expand(2, 3, 3))


def test_batches_are_cut_in_place_where_the_data_lives_and_by_a_dataloader_across_processes():
    dm = Squares()
    dm.setup()
    assert not isinstance(dm.train_dataloader(), DeviceBatches)  # CPU data: a DataLoader
    dm.slice_on_cpu = True
    assert isinstance(dm.train_dataloader(), DeviceBatches)
    dm.trainer = fake_trainer(training=True, world_size=2)
    assert not isinstance(dm.train_dataloader(), DeviceBatches)  # several processes: Lightning shards a DataLoader


def test_the_splits_move_to_the_training_device_when_on_device_allows():
    moved, auto = Squares(on_device=True), Squares(on_device="auto")
    for dm in (moved, auto):
        dm.trainer = fake_trainer(training=True, device="meta")  # a device other than the CPU, on any machine
        dm.setup()
    assert all(t.device.type == "meta" for tensors in moved.splits.values() for t in tensors)
    assert isinstance(moved.train_dataloader(), DeviceBatches)
    assert moved.mean.device.type == "cpu"  # statistics are taken before the move, on the CPU
    assert all(t.device.type == "cpu" for tensors in auto.splits.values() for t in tensors)  # auto: CUDA only


def test_a_reader_that_returns_an_empty_split_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"data 'squares': the val split needs samples, as many per field \(got \[0\]\)"):
        Squares(sizes=(8, 0, 4)).setup()


def test_a_reader_with_a_missing_field_is_refused():
    dm = Squares()
    dm.load = lambda: {s: (torch.zeros(4, 1, 2, 2, dtype=torch.uint8),) for s in ("train", "val", "test")}
    with pytest.raises(ConfigError, match=r"data 'squares': each split holds images, labels \(got 1\)"):
        dm.setup()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"batch_size": 0}, r"data 'squares': batch_size must be an integer >= 1 \(got 0\)"),
        ({"batch_size": True}, r"batch_size must be an integer \(got True\)"),
        ({"num_workers": -1}, r"num_workers must be an integer >= 0 \(got -1\)"),
        ({"on_device": "gpu"}, r"on_device must be auto, true or false \(got 'gpu'\)"),
    ],
)
def test_the_shared_settings_are_checked_in_the_house_shape(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Squares(**kwargs)


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_every_data_config_names_itself_in_its_messages(make_config, name):
    """A format that reads the user's files (image_folder, csv, ...) first says that its root or path is unset."""
    from omegaconf.errors import InterpolationResolutionError

    from recipes.run.resolvers import resolver_error

    cfg = make_config(f"data={name}", "data.batch_size=0")
    assert cfg.data.name == name
    with pytest.raises(ConfigError) as err:
        try:
            instantiate(cfg.data)
        except InterpolationResolutionError as wrapped:  # a resolver reading the user's folder or table
            raise resolver_error(wrapped) from None
    message = str(err.value)
    needs_files = any(k in message for k in ("root", "path"))  # raised by the resolver that reads the files,
    owner = message.split(":")[0]  # which names the format it reads (image_folder_pairs reads an image_folder)
    assert owner == f"data '{name}'" or (needs_files and name.startswith(owner.split("'")[1]))
    assert needs_files or message == f"data '{name}': batch_size must be an integer >= 1 (got 0)"
