"""Box regression losses on xyxy boxes: ``forward(pred [N,4], target [N,4])``, one value per box.

The IoU family matches ``torchvision.ops`` on valid boxes (``x1 < x2``, ``y1 < y2``). Widths and
heights are clamped at 0 for areas and at ``eps`` for aspect ratios, so degenerate boxes (points,
lines, inverted corners) and identical boxes give finite values and finite gradients.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from losses.base import Loss, as_float, autocast_off
from losses.registry import register


class BoxLoss(Loss):
    """What the box losses share: input checks, float32 under autocast, 0 (not NaN) for no boxes."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        for arg, boxes in (("pred", pred), ("target", target)):
            if not boxes.is_floating_point():
                raise self.input_error(arg, "a floating-point tensor of xyxy boxes", boxes.dtype)
            if boxes.ndim != 2 or boxes.shape[-1] != 4:
                raise self.input_error(arg, "xyxy boxes of shape [N, 4]", tuple(boxes.shape))
        if pred.shape != target.shape:
            raise self.input_error("target", f"boxes of pred's shape {tuple(pred.shape)}", tuple(target.shape))
        with autocast_off(pred, target):
            pred, target = as_float(pred), as_float(target)
            values = self.per_box(pred, target.to(pred.dtype))
            if values.numel() == 0 and self.reduction == "mean":
                return values.sum() * 0.0  # no boxes in the batch: 0 with a gradient path, not NaN
            return self.reduce(values)

    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class Overlap(NamedTuple):
    """Intersection, union, IoU and the enclosing box's width and height of pairs of boxes."""

    inter: Tensor
    union: Tensor
    iou: Tensor
    enclosing_w: Tensor
    enclosing_h: Tensor


def intersection_union(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Intersection and union areas, with sides clamped at 0 so inverted boxes have no negative area."""
    x1, y1, x2, y2 = pred.unbind(-1)
    x1g, y1g, x2g, y2g = target.unbind(-1)
    inter = (torch.min(x2, x2g) - torch.max(x1, x1g)).clamp_min(0) * (torch.min(y2, y2g) - torch.max(y1, y1g)).clamp_min(0)
    union = (x2 - x1).clamp_min(0) * (y2 - y1).clamp_min(0) + (x2g - x1g).clamp_min(0) * (y2g - y1g).clamp_min(0) - inter
    return inter, union


def overlap(pred: Tensor, target: Tensor, eps: float) -> Overlap:
    """The geometry the GIoU family needs: intersection, union, IoU and the enclosing box."""
    x1, y1, x2, y2 = pred.unbind(-1)
    x1g, y1g, x2g, y2g = target.unbind(-1)
    inter, union = intersection_union(pred, target)
    enclosing_w = (torch.max(x2, x2g) - torch.min(x1, x1g)).clamp_min(0)
    enclosing_h = (torch.max(y2, y2g) - torch.min(y1, y1g)).clamp_min(0)
    return Overlap(inter, union, inter / (union + eps), enclosing_w, enclosing_h)


def center_distance_term(pred: Tensor, target: Tensor, o: Overlap, eps: float) -> Tensor:
    """DIoU's penalty: squared distance of the centres over the squared diagonal of the enclosing box."""
    x1, y1, x2, y2 = pred.unbind(-1)
    x1g, y1g, x2g, y2g = target.unbind(-1)
    centers = ((x1 + x2 - x1g - x2g) / 2) ** 2 + ((y1 + y2 - y1g - y2g) / 2) ** 2
    return centers / (o.enclosing_w**2 + o.enclosing_h**2 + eps)


def aspect_angle(boxes: Tensor, eps: float) -> Tensor:
    """``atan(w / h)`` as atan2 of sides clamped at ``eps``: equal for real boxes, finite gradients for flat ones."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.atan2((x2 - x1).clamp_min(eps), (y2 - y1).clamp_min(eps))


@register("l1", kind="boxes")
class BoxL1(BoxLoss):
    """``sum_i |pred_i - target_i|`` over the four coordinates of each box (the L1 term of DETR).

    Not scale-invariant: its size follows the units of the boxes. The plain baseline to IoU losses.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs().sum(-1)


class IoUFamily(BoxLoss):
    """A box loss with ``eps`` guarding its divisions (torchvision's default 1e-7)."""

    def __init__(self, eps: float = 1e-7, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.eps = self.check_number("eps", eps, 0.0, low_open=True)


@register("iou", kind="boxes")
class IoULoss(IoUFamily):
    """``1 - IoU`` (Yu et al. 2016, UnitBox): scale-invariant, but flat (zero gradient) for disjoint boxes.

    Equals ``1 - torchvision.ops.box_iou(pred, target).diagonal()`` up to ``eps``.
    """

    citations = ("Yu et al. 2016",)

    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:
        inter, union = intersection_union(pred, target)  # no enclosing box: IoU does not need it
        return 1 - inter / (union + self.eps)


@register("giou", kind="boxes")
class GIoULoss(IoUFamily):
    """``1 - IoU + (|C| - |A u B|) / |C|``, C the enclosing box (Rezatofighi et al. 2019).

    Equals ``torchvision.ops.generalized_box_iou_loss``; gives disjoint boxes a gradient. The detection default.
    """

    citations = ("Rezatofighi et al. 2019",)

    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:
        o = overlap(pred, target, self.eps)
        enclosing = o.enclosing_w * o.enclosing_h
        return 1 - o.iou + (enclosing - o.union) / (enclosing + self.eps)


@register("diou", kind="boxes")
class DIoULoss(IoUFamily):
    """``1 - IoU + d^2 / c^2``: centre distance over the enclosing diagonal (Zheng et al. 2020).

    Equals ``torchvision.ops.distance_box_iou_loss``; pulls centres together faster than GIoU.
    """

    citations = ("Zheng et al. 2020",)

    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:
        o = overlap(pred, target, self.eps)
        return 1 - o.iou + center_distance_term(pred, target, o, self.eps)


@register("ciou", kind="boxes")
class CIoULoss(IoUFamily):
    """DIoU plus ``alpha v``, v the squared gap of the aspect-ratio angles (Zheng et al. 2020).

    Equals ``torchvision.ops.complete_box_iou_loss`` (alpha is not differentiated); also matches aspect ratios.
    """

    citations = ("Zheng et al. 2020",)

    def per_box(self, pred: Tensor, target: Tensor) -> Tensor:
        o = overlap(pred, target, self.eps)
        diou = 1 - o.iou + center_distance_term(pred, target, o, self.eps)
        v = (4 / math.pi**2) * (aspect_angle(target, self.eps) - aspect_angle(pred, self.eps)) ** 2
        with torch.no_grad():
            alpha = v / (1 - o.iou + v + self.eps)
        return diou + alpha * v
