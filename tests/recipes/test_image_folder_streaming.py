"""Images streamed from disk (data.storage=stream): the same splits as in memory, per-sample augmentation that no
worker count or restart changes, the auto choice and its message, refused settings, and training on the stream."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from torchvision.io import write_png

from losses import ConfigError
from recipes.data.image_folder import ImageFolderDataModule, ImageFolderTuplesDataModule
from recipes.data.streaming import SeededOrder, StreamingLoader
from tests.helpers.folders import first_digits, write_image_folder
from tests.helpers.runs import killed_and_resumed
from tests.helpers.sizes import STREAM_RESUME_RUN
from train import train

TINY = ("data.image_size=16", "data.batch_size=8", "data.eval_batch_size=16", "model.widths=[8,16]")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """48 training and 48 validation digits of 4 classes as PNG files; test is split off train."""
    return write_image_folder(tmp_path_factory.mktemp("folder") / "digits", first_digits(), splits=("train", "val"))


def decoded(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images), torch.stack(labels)


@pytest.mark.parametrize("variant", [{}, {"imbalance": 2, "label_noise": 0.25}], ids=["plain", "imbalance+noise"])
def test_streamed_splits_hold_the_images_labels_and_statistics_of_the_in_memory_ones(folder, variant):
    memory = ImageFolderDataModule(root=str(folder), image_size=20, storage="memory", **variant)
    stream = ImageFolderDataModule(root=str(folder), image_size=20, storage="stream", **variant)
    memory.setup()
    stream.setup()
    for split, (images, labels) in memory.splits.items():
        streamed_images, streamed_labels = decoded(stream.streamed[split])
        assert torch.equal(streamed_images, images) and torch.equal(streamed_labels, labels), split
    assert torch.allclose(stream.mean, memory.mean) and torch.allclose(stream.std, memory.std)


def batches(dm: ImageFolderDataModule) -> list[torch.Tensor]:
    return [images for images, _ in dm.train_dataloader()]


def test_a_samples_augmentation_depends_on_the_seed_epoch_and_index_not_on_the_workers(folder):
    args = {"root": str(folder), "image_size": 16, "storage": "stream", "batch_size": 8, "augment": "crop_flip"}
    torch.manual_seed(3)
    alone, with_workers = ImageFolderDataModule(**args), ImageFolderDataModule(**args, num_workers=2)
    alone.setup()
    with_workers.setup()
    first, second = batches(alone), batches(with_workers)
    assert len(first) == len(second) == 5 and all(torch.equal(a, b) for a, b in zip(first, second))  # 43 // 8
    unaugmented = torch.stack([alone.streamed["train"][i][0] for i in range(len(alone.streamed["train"]))])
    assert not any(torch.equal(b, unaugmented[: len(b)]) for b in first)  # the crops moved pixels


def test_the_order_starts_after_the_samples_trained_and_changes_with_the_epoch():
    def order(epoch: int, consumed: int) -> list[tuple[int, int]]:
        return list(SeededOrder(20, seed=7, epoch=lambda: epoch, consumed=lambda: consumed))

    assert order(0, 8) == order(0, 0)[8:]  # a restart mid-epoch continues the same order, same augmentation seeds
    assert sorted(i for i, _ in order(1, 0)) == list(range(20)) and order(1, 0) != order(0, 0)
    loader = StreamingLoader(range(20), batch_size=4, sampler=SeededOrder(20, 7, lambda: 0, lambda: 0))
    fresh = StreamingLoader(range(20), batch_size=4, sampler=SeededOrder(20, 0, lambda: 0, lambda: 0))
    fresh.load_state_dict(loader.state_dict())  # what Lightning saves in a checkpoint and gives back on resume
    assert fresh.sampler.seed == 7 and list(fresh.sampler) == list(loader.sampler)


def test_auto_streams_when_the_decoded_images_exceed_memory_limit_gb_and_says_why(folder, caplog):
    with caplog.at_level(logging.INFO, logger="recipes.data.streaming"):
        big = ImageFolderDataModule(root=str(folder), image_size=16, storage="auto", memory_limit_gb=1e-5)
        small = ImageFolderDataModule(root=str(folder), image_size=16, storage="auto", memory_limit_gb=1)
    assert (big.storage, small.storage) == ("stream", "memory")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (  # 96 images of 1 x 16 x 16 bytes
        "data 'image_folder': storage=auto chose stream: the decoded images take 0.02 MB, more than 0.01 MB "
        "(data.memory_limit_gb) (96 images)"
    )
    assert lines[1].startswith("data 'image_folder': storage=auto chose memory: the decoded images take 0.02 MB, within")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"storage": "disk"}, "storage must be one of auto, memory, stream (got 'disk')"),
        ({"memory_limit_gb": 0}, "memory_limit_gb must be > 0 (got 0)"),
        ({"pin_memory": "yes"}, "pin_memory must be true or false (got 'yes')"),
        (
            {"persistent_workers": True},
            "persistent_workers keeps DataLoader workers between epochs, so it needs num_workers > 0; "
            "set data.num_workers=2 or data.persistent_workers=false (got True)",
        ),
        ({"unlabelled": "/nowhere"}, "unlabelled /nowhere is not a folder; expected a folder of images in .png"),
    ],
    ids=["storage", "memory_limit_gb", "pin_memory", "persistent_workers", "unlabelled"],
)
def test_each_refused_setting_names_itself_and_the_fix(folder, settings, message):
    with pytest.raises(ConfigError) as refused:
        ImageFolderDataModule(root=str(folder), **settings)
    assert str(refused.value).startswith(f"data 'image_folder': {message}"), str(refused.value)


def test_an_unlabelled_folder_with_a_stray_file_is_refused_naming_it(folder, tmp_path):
    (tmp_path / "a.png").write_bytes((folder / "train" / "one" / "0.png").read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'notes.txt'} is not an image torchvision.io reads"):
        ImageFolderDataModule(root=str(folder), unlabelled=str(tmp_path))


def test_pairs_are_drawn_in_memory_and_refuse_streaming(folder):
    with pytest.raises(ConfigError, match="storage must be auto or memory: image_folder_pairs draws its tuples from images"):
        ImageFolderTuplesDataModule(root=str(folder), storage="stream")


# ----- training on the stream --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "loader", [("data.num_workers=0",), ("data.num_workers=2", "data.persistent_workers=true")], ids=["in-process", "workers"]
)
def test_classification_trains_on_the_stream(smoke_config, folder, loader):
    cfg = smoke_config("data=image_folder", f"data.root={folder}", "data.storage=stream", *loader, *TINY)
    metrics = train(cfg)
    assert math.isfinite(metrics["test/acc"]) and 0 <= metrics["test/acc"] <= 1


def test_simclr_pretrains_on_an_unlabelled_folder_and_probes_on_the_labelled_one(smoke_config, folder, tmp_path):
    unlabelled = tmp_path / "unlabelled"
    for i, image in enumerate(sorted((folder / "val").rglob("*.png"))):  # a flat folder, its classes forgotten
        unlabelled.mkdir(exist_ok=True)
        (unlabelled / f"{i}.png").write_bytes(image.read_bytes())
    overrides = ("task=simclr", "data=image_folder", f"data.root={folder}", f"data.unlabelled={unlabelled}", *TINY)
    metrics = train(smoke_config(*overrides, "task.probe_steps=5", "task.eval_train_samples=32"))
    assert math.isfinite(metrics["train/loss"]) and 0 <= metrics["test/probe_acc"] <= 1 and 0 <= metrics["test/knn_acc"] <= 1


def test_predict_reads_a_streamed_runs_images_at_its_side_and_channels_with_its_statistics(smoke_config, tmp_path, data_dir):
    from tests.test_predict import predict, trained_run

    folder = write_image_folder(tmp_path / "digits", first_digits(), splits=("train", "val"))  # its own: changed below
    ckpt = trained_run(smoke_config, tmp_path, "data=image_folder", f"data.root={folder}", "data.storage=stream", *TINY)
    predict(ckpt, folder / "val" / "one", tmp_path / "out", data_dir)
    rows = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "file,class,prob_0,prob_1,prob_2,prob_3" and len(rows) == 1 + 12
    white = torch.full((1, 28, 28), 255, dtype=torch.uint8)
    for image in (folder / "train").rglob("*.png"):  # statistics recomputed from these would change every row
        write_png(white, str(image))
    predict(ckpt, folder / "val" / "one", tmp_path / "again", data_dir)
    assert (tmp_path / "again" / "predictions.csv").read_text().splitlines() == rows  # the checkpoint's statistics


# ----- exact resume ------------------------------------------------------------------------------------------------
def test_a_streamed_run_killed_mid_epoch_resumes_to_the_weights_of_the_uninterrupted_run(folder, tmp_path, data_dir):
    run = (*STREAM_RESUME_RUN, f"data.root={folder}")
    saved, resumed, expected = killed_and_resumed(run, tmp_path, data_dir)
    assert saved["global_step"] == 8 and saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"] == 2
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["seed"] == 0  # the loader's own state
    assert resumed["test/acc"] == expected["test/acc"] and resumed["val/loss"] == expected["val/loss"]
