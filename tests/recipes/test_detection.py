"""Detection: target assignment, box decoding, NMS, both slots swap, it learns, and wrong slots are refused."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.errors import HydraException

import losses
from losses import ConfigError, Loss
from recipes.models.detector import AnchorFreeDetector, assign, postprocess
from recipes.run.checks import check_config
from tests.helpers.sizes import DETECTION_TINY
from train import train


def grid(stride=4, size=32):
    return AnchorFreeDetector(widths=(8, 16, 32), stride=stride).locations(size // stride, size // stride, torch.device("cpu"))


def test_locations_near_a_box_centre_take_its_class_and_the_rest_are_background():
    locations = grid()  # centres at 2, 6, 10, ... pixels
    boxes = torch.tensor([[[4.0, 4.0, 16.0, 16.0], [0, 0, 0, 0]]])
    labels = torch.tensor([[7, -1]])  # the second box is padding
    classes, matched = assign(locations, boxes, labels, stride=4, radius=1.5, background=10)
    positive = classes[0] != 10
    centres = locations[positive]
    assert (classes[0][positive] == 7).all()
    assert ((centres - 10).abs() < 6).all()  # within 1.5 strides of the centre (10, 10)
    assert positive.sum() == 9  # the 3 x 3 locations at 6, 10, 14 on each axis (2 and 18 are too far)
    assert torch.equal(matched[0][positive], boxes[0, 0].expand(9, 4))


def test_a_thin_box_with_no_location_inside_still_gets_the_nearest_one():
    locations = grid()
    boxes = torch.tensor([[[7.0, 3.0, 9.0, 30.0]]])  # 2 px wide, between the location columns 6 and 10
    classes, _ = assign(locations, boxes, torch.tensor([[3]]), stride=4, radius=1.5, background=10)
    assert (classes[0] == 3).sum() == 1


def test_where_boxes_overlap_the_smaller_one_wins():
    locations = grid()
    boxes = torch.tensor([[[0.0, 0.0, 32.0, 32.0], [8.0, 8.0, 16.0, 16.0]]])
    classes, matched = assign(locations, boxes, torch.tensor([[1, 2]]), stride=4, radius=10, background=10)
    at_small_centre = ((locations - 12).abs() < 1e-6).all(1) | ((locations - torch.tensor([10.0, 10.0])).abs() < 1e-6).all(1)
    assert (classes[0][at_small_centre] == 2).all()
    assert torch.equal(matched[0][classes[0] == 2][0], boxes[0, 1])


def test_decode_puts_each_side_at_its_distance_in_strides():
    model = AnchorFreeDetector(widths=(8, 16, 32), stride=8)
    locations = torch.tensor([[20.0, 12.0]])
    box = model.decode(torch.tensor([[1.0, 0.5, 2.0, 1.5]]), locations)
    torch.testing.assert_close(box, torch.tensor([[12.0, 8.0, 36.0, 24.0]]))


def test_postprocess_keeps_one_box_per_object_above_the_threshold():
    boxes = torch.tensor([[[0.0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40], [50, 50, 60, 60]]])
    scores = torch.zeros(1, 4, 3)
    scores[0, 0, 1], scores[0, 1, 1], scores[0, 2, 2], scores[0, 3, 0] = 0.9, 0.8, 0.7, 0.01
    (found,) = postprocess(scores, boxes, score_threshold=0.05, iou_threshold=0.5, max_detections=10)
    assert found["labels"].tolist() == [1, 2]
    assert torch.equal(found["boxes"], boxes[0, [0, 2]])


@pytest.mark.parametrize("loss,box_loss,sigmoid", [("focal", "giou", True), ("ce", "l1", False), ("bce_logits", "ciou", True)])
def test_smoke_fit_with_each_kind_of_score_reports_map_and_draws_boxes(smoke_config, tmp_path, loss, box_loss, sigmoid):
    from recipes.detection import DetectionTask

    cfg = smoke_config("task=detection", f"loss={loss}", f"box_loss={box_loss}", *DETECTION_TINY)
    metrics = train(cfg)
    for key in ("test/map", "test/map_50", "test/map_75", "train/loss_epoch", "train/box_loss_epoch", "val/map"):
        assert key in metrics and math.isfinite(metrics[key]), key
    # each slot's epoch mean is its own: the total (weights 1) is their sum
    assert metrics["train/total_epoch"] == pytest.approx(metrics["train/loss_epoch"] + metrics["train/box_loss_epoch"], rel=1e-5)
    assert (tmp_path / "images" / "test_detections.png").exists()
    task = DetectionTask(AnchorFreeDetector(), check_config(cfg), optimizer=torch.optim.SGD)
    assert task.sigmoid is sigmoid
    assert task.losses["box_loss"].name == box_loss and task.losses["loss"].reduction == "sum"


def test_a_short_run_learns_to_find_digits(make_config):
    cfg = make_config(
        "task=detection",
        "logger=csv",
        "callbacks=none",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "data.size=64",
        "data.max_objects=3",
        "data.train_size=640",
        "data.val_size=64",
        "data.test_size=100",
        "data.batch_size=16",
        "model.head_width=32",
    )
    metrics = train(cfg)
    assert metrics["test/map_50"] > 0.15  # an untrained detector scores ~0 (this run: 0.29)
    assert metrics["test/map"] < metrics["test/map_50"]


def test_box_loss_must_be_a_box_loss(make_config):
    with pytest.raises(HydraException, match=r"(?s)Available options in 'box_loss'.*ciou.*diou.*giou.*iou.*l1"):
        make_config("task=detection", "box_loss=focal")
    with pytest.raises(ConfigError, match="slot 'box_loss' of task 'detection' takes kind 'boxes'. Losses that fit: ciou, diou"):
        check_config(make_config("task=detection", "box_loss.name=focal"))
    with pytest.raises(ConfigError, match="takes kind 'classification'"):
        check_config(make_config("task=detection", "loss=giou"))


def test_unknown_score_mode_is_refused(make_config):
    from recipes.detection import DetectionTask

    with pytest.raises(ConfigError, match="task 'detection': scores must be auto, sigmoid or softmax \\(got 'tanh'\\)"):
        DetectionTask(AnchorFreeDetector(), check_config(make_config("task=detection")), torch.optim.SGD, scores="tanh")


@pytest.mark.parametrize("name", losses.available("classification"))
def test_every_classification_loss_declares_a_target_format_detection_can_score(name):
    assert losses.spec(name).cls.target_format in ("indices", "binary")  # focal, bce_logits and ce: see the smoke fit


@pytest.fixture
def binary_loss():
    """A classification loss defined here that declares float 0/1 targets; no recipe names it."""

    @losses.register("zz_test_binary", kind="classification")
    class SquaredSigmoid(Loss):
        """Squared error ``(sigmoid(z) - y)^2`` of 0/1 targets; keeps the last target it saw."""

        target_format = "binary"

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            self.seen = target
            return self.reduce((logits.sigmoid() - target).square())

    try:
        yield losses.build("zz_test_binary")
    finally:
        losses.unregister("zz_test_binary")


def test_a_new_loss_declaring_binary_targets_is_scored_with_sigmoids(binary_loss):
    from recipes.detection import DetectionTask

    model = AnchorFreeDetector(widths=(8, 16, 32), head_width=16, head_depth=1)
    task = DetectionTask(model, {"loss": binary_loss, "box_loss": losses.build("giou")}, optimizer=torch.optim.SGD)
    assert task.sigmoid
    boxes, labels = torch.tensor([[[4.0, 4.0, 20.0, 20.0]]]), torch.tensor([[3]])
    class_logits, ltrb = task(torch.randn(1, 1, 32, 32))
    task.loss_terms((class_logits, ltrb), boxes, labels)
    target = binary_loss.seen  # one row per location, K columns of 0/1 (no background column)
    assert target.is_floating_point() and target.shape == (class_logits[0, 0].numel(), 10)
    assert set(target.unique().tolist()) == {0.0, 1.0}
    assert target.sum(0).nonzero().flatten().tolist() == [3]  # the positive locations are of class 3 only
