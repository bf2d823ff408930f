"""Mask, VOC and COCO folders streamed from disk (data.storage=stream): the samples of the in-memory splits, training that
ends with the in-memory run's weights (0 and 2 workers), hflip that takes masks and boxes along (in the workers as in
memory), the auto choice and its message, refused settings, and exact resume."""

from __future__ import annotations

import json
import logging
import shutil
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from losses import ConfigError
from recipes.data.coco import COCOFolderDataModule
from recipes.data.layout import mirror_boxes, mirrored
from recipes.data.mask_folder import MaskFolderDataModule, found_classes
from recipes.data.streaming import decode_all
from recipes.data.voc import VOCFolderDataModule, class_names
from tests.helpers.configs import compose_config
from tests.helpers.folders import write_coco_folder, write_mask_folder, write_voc_folder
from tests.helpers.runs import killed_and_resumed, weights
from tests.helpers.sizes import DETECTOR_TINY, RESUME_RUN
from train import train

FORMATS = {
    "mask_folder": MaskFolderDataModule,
    "voc_folder": VOCFolderDataModule,
    "coco_folder": partial(COCOFolderDataModule, num_classes=3),
}
TASKS = {
    "mask_folder": ("task=segmentation", "data=mask_folder", "model.widths=[8,16]"),
    "voc_folder": ("task=detection", "data=voc_folder", *DETECTOR_TINY),
    "coco_folder": ("task=detection", "data=coco_folder", "data.num_classes=3", *DETECTOR_TINY),
}
TINY = ("data.image_size=32", "data.batch_size=4", "data.eval_batch_size=8", "trainer.max_epochs=2")


@pytest.fixture(scope="module")
def roots(tmp_path_factory, data_dir) -> dict[str, Path]:
    """A mask folder (24 train, 8 val pairs, test split off train), a VOC folder (16 train, 6 val, a quarter of the
    objects difficult) and a COCO folder (16 train, 6 val, also the test split; a quarter of the objects crowds)."""
    found_classes.cache_clear()
    class_names.cache_clear()
    base = tmp_path_factory.mktemp("folders")
    write_mask_folder(base / "masks", data_dir, {"train": 24, "val": 8})
    write_voc_folder(base / "voc", data_dir, {"train": 16, "val": 6}, difficult_every=4)
    write_coco_folder(base / "coco", data_dir, {"train": 16, "val": 6}, crowd_every=4)
    return {"mask_folder": base / "masks", "voc_folder": base / "voc", "coco_folder": base / "coco"}


@pytest.mark.parametrize("name", FORMATS)
def test_streamed_splits_hold_the_samples_and_statistics_of_the_in_memory_ones(roots, name):
    memory = FORMATS[name](root=str(roots[name]), image_size=24, storage="memory")
    stream = FORMATS[name](root=str(roots[name]), image_size=24, storage="stream")
    memory.setup()
    stream.setup()
    assert set(stream.streamed) == set(memory.splits) == {"train", "val", "test"}
    for split, tensors in memory.splits.items():
        streamed = decode_all(stream.streamed[split])
        assert len(streamed) == len(tensors) and all(torch.equal(s, m) for s, m in zip(streamed, tensors)), split
    assert torch.allclose(stream.mean, memory.mean) and torch.allclose(stream.std, memory.std)
    assert len(memory.splits["test"][0]) > 0 and stream.streams("val", train=False) is stream.streamed["val"]


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "workers"])
@pytest.mark.parametrize("name", FORMATS)
def test_training_on_the_stream_ends_with_the_weights_of_training_in_memory(roots, name, workers, tmp_path, data_dir):
    """No augmentation: the streamed order is the in-memory one (both seeded by the run's seed), so the runs agree up to
    the float64 statistics of the stream against the float32 ones in memory."""
    run = ["debug=smoke", *TASKS[name], f"data.root={roots[name]}", *TINY]
    streamed = train(compose_config([*run, "data.storage=stream", f"data.num_workers={workers}"], tmp_path / "s", data_dir))
    held = train(compose_config([*run, "data.storage=memory"], tmp_path / "m", data_dir))
    ours, theirs = weights(tmp_path / "s" / "checkpoints" / "last.ckpt"), weights(tmp_path / "m" / "checkpoints" / "last.ckpt")
    assert set(ours) == set(theirs) and max((ours[k] - theirs[k]).abs().max().item() for k in theirs) < 1e-4
    assert streamed["train/loss_epoch"] == pytest.approx(held["train/loss_epoch"], rel=1e-4)


@pytest.mark.parametrize("name", FORMATS)
def test_hflip_mirrors_a_sample_with_its_mask_or_boxes_in_the_workers_as_in_memory(roots, name):
    dm = FORMATS[name](root=str(roots[name]), image_size=32, storage="stream", hflip=True)
    dm.setup()
    train = dm.streamed["train"]
    for i in range(4):
        plain = train[i]
        drawn = [train[(i, seed)] for seed in range(12)]  # as SeededOrder asks a worker for it
        flips = [not torch.equal(sample[0], plain[0]) for sample in drawn]
        assert any(flips) and not all(flips)
        for sample, flip in zip(drawn, flips):  # what the in-memory path does to a batch on its device
            expected = mirrored(dm.fields, tuple(t[None] for t in plain), torch.tensor([flip]))
            assert all(torch.equal(got, want[0]) for got, want in zip(sample, expected)), (i, flip)
        image, *targets = drawn[flips.index(True)]
        assert torch.equal(image, plain[0].flip(-1))
        if name == "mask_folder":
            assert torch.equal(targets[0], plain[1].flip(-1))
            continue
        boxes, labels = targets
        for box, original, label in zip(boxes, plain[1], labels):  # each object's pixels, mirrored, under its box
            if label == -1:
                assert box.abs().sum() == 0  # padding stays padding
                continue
            x1, y1, x2, y2 = box.round().int().tolist()
            ox1, oy1, ox2, oy2 = original.round().int().tolist()
            assert torch.equal(image[:, y1:y2, x1:x2], plain[0][:, oy1:oy2, ox1:ox2].flip(-1))
    assert torch.equal(mirror_boxes(torch.tensor([[2.0, 3.0, 10.0, 7.0]]), 32), torch.tensor([[22.0, 3.0, 30.0, 7.0]]))


@pytest.mark.parametrize("name", FORMATS)
def test_hflip_from_memory_mirrors_a_random_half_of_a_training_batch_with_its_targets(roots, name):
    dm = FORMATS[name](root=str(roots[name]), image_size=32, storage="memory", hflip=True)
    dm.setup()
    dm.trainer = SimpleNamespace(training=True)  # what on_after_batch_transfer reads of the trainer
    batch, n = dm.splits["train"], len(dm.splits["train"][0])
    torch.manual_seed(0)
    out = dm.on_after_batch_transfer(batch, 0)
    torch.manual_seed(0)
    flip = torch.rand(n) < 0.5  # the draw on_after_batch_transfer makes
    assert 0 < int(flip.sum()) < n
    expected = mirrored(dm.fields, (dm.normalize(batch[0].clone()), *batch[1:]), flip)
    assert all(torch.equal(got, want) for got, want in zip(out, expected))
    assert not torch.equal(out[1], batch[1]) and torch.equal(out[1][~flip], batch[1][~flip])  # targets moved with them


@pytest.mark.parametrize(
    ("name", "holds"),
    [
        ("mask_folder", "32 images and their int64 masks"),
        ("voc_folder", "22 images and their boxes"),
        ("coco_folder", "28 images and their boxes"),  # val.json is also the test split
    ],
)
def test_auto_streams_when_the_decoded_splits_exceed_memory_limit_gb_and_says_why(roots, name, holds, caplog):
    with caplog.at_level(logging.INFO, logger="recipes.data.streaming"):
        big = FORMATS[name](root=str(roots[name]), image_size=24, storage="auto", memory_limit_gb=1e-6)
        small = FORMATS[name](root=str(roots[name]), image_size=24, storage="auto", memory_limit_gb=1)
    assert (big.storage, small.storage) == ("stream", "memory")
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith(f"data '{name}': storage=auto chose stream: the decoded images take ") and first.endswith(
        f"more than 0.00 MB (data.memory_limit_gb) ({holds})"
    )
    assert second.startswith(f"data '{name}': storage=auto chose memory: the decoded images take ") and "within" in second


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"storage": "disk"}, "storage must be one of auto, memory, stream (got 'disk')"),
        ({"memory_limit_gb": -1}, "memory_limit_gb must be > 0 (got -1)"),
        ({"pin_memory": "yes"}, "pin_memory must be true or false (got 'yes')"),
        ({"hflip": "yes"}, "hflip must be true or false (got 'yes')"),
        ({"persistent_workers": 1}, "persistent_workers must be true or false (got 1)"),
        (
            {"persistent_workers": True},
            "persistent_workers keeps DataLoader workers between epochs, so it needs num_workers > 0; "
            "set data.num_workers=2 or data.persistent_workers=false (got True)",
        ),
    ],
    ids=["storage", "memory_limit_gb", "pin_memory", "hflip", "persistent_workers_type", "persistent_workers"],
)
def test_each_refused_setting_names_itself_and_the_fix(roots, name, settings, message):
    with pytest.raises(ConfigError) as refused:
        FORMATS[name](root=str(roots[name]), **settings)
    assert str(refused.value) == f"data '{name}': {message}"


@pytest.mark.parametrize("storage", ["memory", "stream"])
@pytest.mark.parametrize("name", ["voc_folder", "coco_folder"])
def test_detection_trains_with_hflip_from_memory_and_from_the_stream(roots, name, storage, tmp_path, data_dir):
    run = ["debug=smoke", *TASKS[name], f"data.root={roots[name]}", *TINY, "data.hflip=true"]
    metrics = train(compose_config([*run, f"data.storage={storage}"], tmp_path, data_dir))
    assert all(torch.isfinite(torch.tensor(metrics[k])) for k in ("train/loss_epoch", "val/map", "test/map"))


def test_a_streamed_coco_box_outside_its_image_is_refused_as_in_memory(roots, tmp_path):
    """The json is checked up front; a box is checked against its decoded image, in the statistics pass for train."""
    shutil.copytree(roots["coco_folder"], tmp_path / "coco")
    path = tmp_path / "coco" / "annotations" / "train.json"
    coco = json.loads(path.read_text())
    coco["annotations"][3]["bbox"] = [40, 2, 20, 5]  # past the right edge of a 48-pixel image
    path.write_text(json.dumps(coco))
    messages = []
    for storage in ("memory", "stream"):
        dm = FORMATS["coco_folder"](root=str(tmp_path / "coco"), storage=storage)
        with pytest.raises(ConfigError) as refused:
            dm.setup()
        messages.append(str(refused.value))
    image = next(i["file_name"] for i in coco["images"] if i["id"] == coco["annotations"][3]["image_id"])
    want = f"annotation {coco['annotations'][3]['id']} in {path} has bbox [x, y, w, h] = [40, 2, 20, 5], which is empty"
    assert messages[0] == messages[1] and want in messages[0] and f"outside its image {image} (48x48)" in messages[0]


# per format: image size, batch size, and the metrics the resumed run must reproduce exactly
RESUMED = {
    "mask_folder": ("16", "3", ("val/loss", "test/dice")),
    "voc_folder": ("32", "2", ("val/loss", "val/box_loss", "test/map", "test/map_50")),
    "coco_folder": ("32", "2", ("val/loss", "val/box_loss", "test/map", "test/map_50")),
}


@pytest.mark.parametrize("name", FORMATS)
def test_a_streamed_run_killed_mid_epoch_resumes_to_the_weights_of_the_uninterrupted_run(roots, name, tmp_path, data_dir):
    """Masks: 22 training pairs in batches of 3; VOC: 14 images (2 split off for test), COCO: 16, in batches of 2; 6
    batches an epoch over 2 epochs, decoded and mirrored with their masks or boxes in 2 workers; killed at step 10."""
    size, batch, metrics = RESUMED[name]
    run = (
        *(a for a in RESUME_RUN if not a.startswith("model")), *TASKS[name], f"data.root={roots[name]}",
        f"data.image_size={size}", f"data.batch_size={batch}", "data.storage=stream", "data.num_workers=2",
        "data.hflip=true",
    )  # fmt: skip
    saved, resumed, expected = killed_and_resumed(run, tmp_path, data_dir)
    assert saved["global_step"] == 8 and saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"] == 2
    for key in metrics:
        assert resumed[key] == expected[key], key
