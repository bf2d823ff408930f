"""References for the box losses: torchvision.ops on xyxy boxes, and IoU and L1 written out by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision

from bench.references.common import reduce_reference


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


torchvision_giou = torchvision_loss(torchvision.ops.generalized_box_iou_loss)
torchvision_diou = torchvision_loss(torchvision.ops.distance_box_iou_loss)
# torchvision's CIoU ignores its own eps inside DIoU (always 1e-7); its alpha is a constant under autograd
torchvision_ciou = torchvision_loss(torchvision.ops.complete_box_iou_loss)
