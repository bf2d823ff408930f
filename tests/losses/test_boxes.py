"""Box losses: CIoU's gradient as torchvision's, degenerate and identical boxes, empty batches, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torchvision

import losses
from losses import ConfigError
from tests.losses.cases_boxes import pred_and_target

BOX_LOSSES = ["l1", "iou", "giou", "diou", "ciou"]
IOU_LOSSES = ["iou", "giou", "diou", "ciou"]

# pairs that break naive formulas: a point, a vertical line, a horizontal line, inverted corners,
# identical points, identical lines, and a zero-width box inside a real one
DEGENERATE_PRED = [[2.0, 2, 2, 2], [1, 1, 1, 5], [0, 3, 6, 3], [5, 5, 1, 1], [4, 4, 4, 4], [2, 0, 2, 7], [3, 1, 3, 4]]
DEGENERATE_TARGET = [[0.0, 0, 4, 4], [0, 0, 3, 6], [1, 1, 5, 5], [0, 0, 6, 6], [4, 4, 4, 4], [2, 0, 2, 7], [0, 0, 6, 6]]


def test_every_box_loss_is_registered_with_kind_boxes():
    assert losses.available("boxes") == sorted(BOX_LOSSES)


def test_ciou_gradient_equals_torchvisions_which_holds_alpha_constant():
    pred, target = pred_and_target(torch.Generator().manual_seed(3), torch.float64)
    ours = pred.clone().requires_grad_(True)
    theirs = pred.clone().requires_grad_(True)
    losses.build("ciou", reduction="sum")(ours, target).backward()
    torchvision.ops.complete_box_iou_loss(theirs, target, reduction="sum").backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-6, atol=1e-9)
    assert ours.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", BOX_LOSSES)
def test_degenerate_boxes_give_finite_values_and_gradients(name, dtype):
    pred = torch.tensor(DEGENERATE_PRED, dtype=dtype, requires_grad=True)
    target = torch.tensor(DEGENERATE_TARGET, dtype=dtype, requires_grad=True)
    values = losses.build(name, reduction="none")(pred, target)
    assert torch.isfinite(values).all(), values
    values.sum().backward()
    assert torch.isfinite(pred.grad).all() and torch.isfinite(target.grad).all()


@pytest.mark.parametrize("name", BOX_LOSSES)
def test_identical_boxes_give_zero_loss_and_finite_gradients(name):
    boxes = torch.tensor([[1.0, 2, 5, 9], [0, 0, 30, 10], [3, 3, 3.5, 3.25]])
    pred = boxes.clone().requires_grad_(True)
    value = losses.build(name)(pred, boxes)
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("name", IOU_LOSSES)
def test_iou_losses_are_scale_invariant_but_l1_is_not(name):
    pred, target = pred_and_target(torch.Generator().manual_seed(4), torch.float64)
    loss = losses.build(name, reduction="none", eps=1e-12)
    torch.testing.assert_close(loss(pred * 10, target * 10), loss(pred, target))
    l1 = losses.build("l1", reduction="none")
    torch.testing.assert_close(l1(pred * 10, target * 10), 10 * l1(pred, target))


def test_giou_pulls_a_disjoint_box_but_iou_is_flat():
    target = torch.tensor([[0.0, 0, 2, 2]])
    for name, moves in (("iou", False), ("giou", True), ("diou", True), ("ciou", True)):
        pred = torch.tensor([[5.0, 5, 7, 7]], requires_grad=True)
        losses.build(name)(pred, target).backward()
        assert bool(pred.grad.abs().sum() > 0) is moves, name


@pytest.mark.parametrize("name", BOX_LOSSES)
def test_no_boxes_give_zero_not_nan(name):
    pred = torch.zeros(0, 4, requires_grad=True)
    value = losses.build(name)(pred, torch.zeros(0, 4))
    value.backward()
    assert value.item() == 0.0
    assert losses.build(name, reduction="none")(pred, torch.zeros(0, 4)).shape == (0,)


def test_boxes_of_the_wrong_shape_name_the_loss_and_argument():
    with pytest.raises(ValueError, match=r"loss 'giou': pred must be xyxy boxes of shape \[N, 4\] \(got \(3, 5\)\)"):
        losses.build("giou")(torch.zeros(3, 5), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="loss 'l1': target must be boxes of pred's shape"):
        losses.build("l1")(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="loss 'diou': pred must be a floating-point tensor"):
        losses.build("diou")(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 4))


def test_eps_must_be_positive():
    with pytest.raises(ConfigError, match=r"loss 'ciou': eps must be > 0 \(got 0\)"):
        losses.build("ciou", eps=0)
