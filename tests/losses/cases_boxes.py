"""Reference cases for the box losses: torchvision.ops on valid xyxy boxes, and L1 by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision

from tests.losses.conformance import Case, reduce_reference

N = 16


def valid_boxes(g: torch.Generator, dtype: torch.dtype, n: int = N) -> torch.Tensor:
    """Boxes with corners in [0, 20) and sides in [0.5, 12): overlapping, nested and disjoint pairs."""
    corner = torch.rand(n, 2, generator=g, dtype=torch.float64) * 20
    sides = torch.rand(n, 2, generator=g, dtype=torch.float64) * 11.5 + 0.5
    return torch.cat([corner, corner + sides], 1).to(dtype)


def pred_and_target(g, dtype):
    target = valid_boxes(g, dtype)
    near = target + (torch.randn(N, 4, generator=g, dtype=torch.float64) * 1.5).to(dtype)  # overlapping
    near = torch.cat([near[:, :2].minimum(near[:, 2:] - 0.5), near[:, :2].maximum(near[:, 2:])], 1)
    far = valid_boxes(g, dtype)  # mostly disjoint
    pred = torch.where((torch.arange(N) % 2 == 0)[:, None], near, far)
    return pred, target


def torchvision_loss(fn):
    def reference(pred, target, reduction, eps=1e-7):
        return fn(pred, target, reduction=reduction, eps=eps)

    return reference


def iou_reference(pred, target, reduction, eps=1e-7):
    x1 = torch.max(pred[:, 0], target[:, 0])
    y1 = torch.max(pred[:, 1], target[:, 1])
    x2 = torch.min(pred[:, 2], target[:, 2])
    y2 = torch.min(pred[:, 3], target[:, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    area = torchvision.ops.box_area(pred) + torchvision.ops.box_area(target)
    return reduce_reference(1 - inter / (area - inter + eps), reduction)


def l1_reference(pred, target, reduction):
    return reduce_reference(F.l1_loss(pred, target, reduction="none").sum(1), reduction)


CASES = {
    "l1": [Case(pred_and_target, l1_reference)],
    "iou": [Case(pred_and_target, iou_reference, hparams={"eps": 1e-7})],
    "giou": [Case(pred_and_target, torchvision_loss(torchvision.ops.generalized_box_iou_loss), hparams={"eps": 1e-7})],
    "diou": [Case(pred_and_target, torchvision_loss(torchvision.ops.distance_box_iou_loss), hparams={"eps": 1e-7})],
    # torchvision's CIoU ignores its own eps inside DIoU (always 1e-7), so the case uses the default; its
    # alpha is a constant under autograd, so gradcheck cannot hold: test_boxes.py compares with torchvision's grad
    "ciou": [Case(pred_and_target, torchvision_loss(torchvision.ops.complete_box_iou_loss), gradcheck=False)],
}
