"""Segmentation: masks and per-pixel classification losses both train, Dice and IoU are reported and improve."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import losses
from recipes.segmentation import SegmentationTask
from tests.helpers.sizes import SEGMENTATION_TINY
from train import train


@pytest.mark.parametrize("loss", ["dice", "ce"])
def test_smoke_fit_reports_dice_and_iou_macro_and_per_digit(smoke_config, tmp_path, loss):
    metrics = train(smoke_config("task=segmentation", f"loss={loss}", *SEGMENTATION_TINY))
    for key in ("val/dice", "val/iou", "test/dice", "test/iou", "test/dice_0", "test/iou_9", "train/loss_epoch"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert "test/dice_background" not in metrics
    assert (tmp_path / "images" / "test_masks.png").exists()


def test_binary_masks_train_with_two_classes(smoke_config):
    metrics = train(smoke_config("task=segmentation", "data=canvas_binary", "loss=tversky", *SEGMENTATION_TINY))
    assert math.isfinite(metrics["test/dice_digit"]) and metrics["test/dice"] == pytest.approx(metrics["test/dice_digit"])


def test_a_classification_loss_sees_every_pixel_as_a_sample():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 11, 5, 7, generator=g)
    masks = torch.randint(0, 11, (2, 5, 7), generator=g)
    task = SegmentationTask(torch.nn.Identity(), {"loss": losses.build("ce")}, torch.optim.SGD)
    torch.testing.assert_close(task.pixel_loss(logits, masks), F.cross_entropy(logits, masks))
    task = SegmentationTask(torch.nn.Identity(), {"loss": losses.build("bce_logits")}, torch.optim.SGD)
    onehot = F.one_hot(masks, 11).movedim(-1, 1).float()
    torch.testing.assert_close(task.pixel_loss(logits, masks), F.binary_cross_entropy_with_logits(logits, onehot))


def test_a_short_run_segments_digits(make_config):
    cfg = make_config(
        "task=segmentation",
        "data=canvas_binary",
        "logger=csv",
        "callbacks=none",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "data.size=64",
        "data.train_size=320",
        "data.val_size=32",
        "data.test_size=64",
        "data.batch_size=16",
        "model.widths=[8,16,32]",
    )
    metrics = train(cfg)
    assert metrics["test/dice"] > 0.6  # foreground Dice; a model that never finds a digit scores 0
