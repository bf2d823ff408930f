"""A mask folder as segmentation data: masks follow their images, void pixels count nowhere, bad layouts are refused."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.io import write_png

import losses
from losses import ConfigError
from recipes.data.mask_folder import MaskFolderDataModule, found_classes
from recipes.segmentation import SegmentationTask
from tests.helpers.folders import write_mask_folder
from train import train


@pytest.fixture
def folder(tmp_path, data_dir):
    found_classes.cache_clear()
    root = tmp_path / "masks"
    return root, write_mask_folder(root, data_dir, {"train": 24, "val": 8})


def test_images_and_masks_are_read_resized_together_and_the_classes_found(folder):
    root, written = folder
    dm = MaskFolderDataModule(root=str(root), image_size=24)
    assert dm.mask_classes == 4  # digits 0-2 -> ids 1-3, and background
    dm.setup()
    images, masks = dm.splits["val"]
    assert images.shape == (8, 3, 24, 24) and masks.shape == (8, 24, 24) and masks.dtype == torch.int64
    assert set(masks.unique().tolist()) <= {0, 1, 2, 3, 255}
    assert (masks[:, 0] == 255).all()  # the void top row: 40 -> 24 rows, nearest keeps row 0
    exact = MaskFolderDataModule(root=str(root), image_size=48)  # 48x40 -> 48x48: rows stretched, columns kept
    exact.setup()
    val_images, val_masks = written["val"]
    assert exact.splits["val"][0].shape == (8, 3, 48, 48)
    torch.testing.assert_close(exact.splits["val"][0][:, :, 0], val_images[:, :, 0])  # bilinear keeps a flat row
    assert torch.equal(exact.splits["val"][1][:, -1], val_masks[:, -1].long())  # last row maps to the last row


def test_missing_val_and_test_are_split_off_train_seeded(tmp_path, data_dir):
    found_classes.cache_clear()
    root = tmp_path / "only_train"
    write_mask_folder(root, data_dir, {"train": 20})
    first = MaskFolderDataModule(root=str(root), image_size=16, val_fraction=0.2, test_fraction=0.1)
    first.setup()
    sizes = {split: len(t[0]) for split, t in first.splits.items()}
    assert sizes == {"train": 14, "val": 4, "test": 2}
    again = MaskFolderDataModule(root=str(root), image_size=16, val_fraction=0.2, test_fraction=0.1)
    again.setup()
    assert all(torch.equal(first.splits[s][0], again.splits[s][0]) for s in ("train", "val", "test"))
    other = MaskFolderDataModule(root=str(root), image_size=16, val_fraction=0.2, test_fraction=0.1, split_seed=1)
    other.setup()
    assert not torch.equal(first.splits["val"][0], other.splits["val"][0])


def test_every_malformed_layout_is_refused_with_the_file_and_the_layout(folder):
    root, _ = folder
    layout = r"Expected layout:\n.*DIR/train/images/<stem>.png"
    with pytest.raises(ConfigError, match=rf"data 'mask_folder': None: no such folder; set data.root=DIR. {layout}"):
        MaskFolderDataModule()
    with pytest.raises(ConfigError, match=rf"class id 3 but data.mask_classes is 3 .*{layout}"):
        MaskFolderDataModule(root=str(root), mask_classes=3).setup()
    (root / "val" / "masks" / "003.png").rename(root / "val" / "masks" / "x.png")
    with pytest.raises(ConfigError, match=rf"val/masks/003.png: mask of 003.png missing. {layout}"):
        MaskFolderDataModule(root=str(root)).setup()
    (root / "val" / "images" / "003.png").unlink()
    with pytest.raises(ConfigError, match=rf"val/masks/x.png: mask without an image of the same stem. {layout}"):
        MaskFolderDataModule(root=str(root)).setup()
    (root / "val" / "masks" / "x.png").unlink()
    write_png(torch.zeros(1, 10, 10, dtype=torch.uint8), str(root / "val" / "masks" / "000.png"))
    with pytest.raises(ConfigError, match=r"val/masks/000.png: the mask is 10x10, its image 48x40; they must match"):
        MaskFolderDataModule(root=str(root)).setup()
    write_png(torch.zeros(3, 40, 48, dtype=torch.uint8), str(root / "val" / "masks" / "000.png"))
    with pytest.raises(ConfigError, match=r"val/masks/000.png: the mask has 3 channels of torch.uint8"):
        MaskFolderDataModule(root=str(root)).setup()
    (root / "val" / "masks" / "000.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=r"val/masks/000.png: not a PNG torchvision can decode"):
        MaskFolderDataModule(root=str(root)).setup()
    for path in (root / "train" / "masks").iterdir():
        path.unlink()
    (root / "train" / "masks").rmdir()
    found_classes.cache_clear()
    with pytest.raises(ConfigError, match=rf"train/masks: folder missing. {layout}"):
        MaskFolderDataModule(root=str(root))


def test_a_missing_root_on_the_command_line_is_one_message(smoke_config):
    with pytest.raises(ConfigError, match="data 'mask_folder': /nonexistent: no such folder; set data.root=DIR"):
        from train import resolver_error

        cfg = smoke_config("task=segmentation", "data=mask_folder", "data.root=/nonexistent")
        try:
            cfg.model.num_outputs  # noqa: B018 - resolves ${mask_classes:...}
        except Exception as err:  # OmegaConf wraps the resolver's error
            raise resolver_error(err) from None


def void_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.randn(2, 4, 6, 5, generator=g)
    masks = torch.randint(0, 4, (2, 6, 5), generator=g)
    masks[:, :2] = 255
    return logits, masks


def test_ce_sees_only_pixels_that_are_not_void_as_torch_ignore_index_does():
    logits, masks = void_batch(torch.Generator().manual_seed(0))
    weight = [0.5, 1.0, 2.0, 1.5]
    task = SegmentationTask(
        torch.nn.Identity(), {"loss": losses.build("ce", weight=weight)}, torch.optim.SGD, num_classes=4, ignore_index=255
    )
    expected = F.cross_entropy(logits, masks, weight=torch.tensor(weight), ignore_index=255)
    torch.testing.assert_close(task.pixel_loss(logits, masks), expected)


def test_a_masks_loss_gets_the_datas_ignore_index_and_a_different_one_is_refused():
    logits, masks = void_batch(torch.Generator().manual_seed(1))
    task = SegmentationTask(torch.nn.Identity(), {"loss": losses.build("dice")}, torch.optim.SGD, num_classes=4, ignore_index=255)
    expected = losses.build("dice", ignore_index=255)(logits, masks)
    torch.testing.assert_close(task.pixel_loss(logits, masks), expected)
    with pytest.raises(ConfigError, match="loss.ignore_index must be the data's ignore_index 255 \\(got 0\\)"):
        SegmentationTask(
            torch.nn.Identity(), {"loss": losses.build("dice", ignore_index=0)}, torch.optim.SGD, num_classes=4, ignore_index=255
        )


def test_void_pixels_count_in_no_metric():
    g = torch.Generator().manual_seed(2)
    _, masks = void_batch(g)
    predicted = torch.randint(0, 4, masks.shape, generator=g)
    task = SegmentationTask(torch.nn.Identity(), {"loss": losses.build("dice")}, torch.optim.SGD, num_classes=4, ignore_index=255)
    metrics = task.metrics["val"]
    metrics.update(*task.metric_inputs(predicted, masks))
    voided = metrics.compute()
    plain = SegmentationTask(torch.nn.Identity(), {"loss": losses.build("dice")}, torch.optim.SGD, num_classes=4)
    plain.metrics["val"].update(predicted[:, 2:], masks[:, 2:])  # the same pixels, void rows cut off
    for key, value in plain.metrics["val"].compute().items():
        torch.testing.assert_close(voided[key], value)
    predicted[:, :2] = 3  # anything in the void rows
    metrics.reset()
    metrics.update(*task.metric_inputs(predicted, masks))
    torch.testing.assert_close(metrics.compute()["val/dice"], voided["val/dice"])


@pytest.mark.parametrize("loss", ["dice", "ce"])
def test_segmentation_trains_on_a_mask_folder(smoke_config, folder, tmp_path, loss):
    root, _ = folder
    cfg = smoke_config(
        "task=segmentation",
        "data=mask_folder",
        f"data.root={root}",
        "data.image_size=32",
        "data.batch_size=4",
        "model.widths=[8,16]",
        f"loss={loss}",
    )
    assert cfg.task.num_classes == 4 and cfg.task.ignore_index == 255
    metrics = train(cfg)
    for key in ("val/dice", "test/dice", "test/iou", "train/loss_epoch"):
        assert math.isfinite(metrics[key]), key
    assert {"test/dice_class1", "test/iou_class3"} <= set(metrics)  # per class, named after mask_names
    assert (tmp_path / "images" / "test_masks.png").exists()
