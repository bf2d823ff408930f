"""A small anchor-free one-stage detector (FCOS-style, one feature level) and its box geometry.

Every location of a stride-``s`` grid predicts ``K + 1`` class scores (channel ``K`` is "background",
used by softmax losses; sigmoid losses read the first ``K``) and the distances ``l, t, r, b`` from its
centre to the four sides of its box, in units of the stride. Training assigns each location to the
smallest ground-truth box whose centre region (``radius`` strides around the box centre) holds it;
every box also claims the location nearest its centre, so thin digits are never left without one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from losses.errors import check, check_integer, check_number, check_widths


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class AnchorFreeDetector(nn.Module):
    """Backbone of stride-2 stages, a top-down neck to ``stride``, and a shared head for classes and boxes.

    ``forward(images)`` returns ``(class_logits [B, K+1, h, w], ltrb [B, 4, h, w])`` with ``ltrb > 0`` in
    strides; :meth:`decode` turns them into xyxy boxes in pixels.
    """

    outputs = ("detector outputs",)  # what tasks may take from it (recipes/run/combinations.py)

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32, 64, 128),
        stride: int = 4,
        head_width: int = 32,
        head_depth: int = 2,
        prior: float = 0.01,
        initial_size: float = 2.0,
    ) -> None:
        super().__init__()
        widths = check_widths("model", "widths", widths)
        strides = [2 ** (i + 1) for i in range(len(widths))]
        check("model", stride in strides, f"stride must be one of {strides} for {len(widths)} stages (widths)", stride)
        check_integer("model", "head_width", head_width, low=1)
        check_integer("model", "head_depth", head_depth, low=0)
        check_number("model", "prior", prior, 0, 1, low_open=True, high_open=True)
        check_number("model", "initial_size", initial_size, 0, low_open=True)
        self.num_classes, self.stride = num_classes, stride
        stages, c_in = [], in_channels
        for width in widths:
            stages.append(nn.Sequential(conv_bn_relu(c_in, width, stride=2), conv_bn_relu(width, width)))
            c_in = width
        self.stages = nn.ModuleList(stages)
        self.first_used = strides.index(stride)
        self.laterals = nn.ModuleList(nn.Conv2d(w, head_width, 1) for w in widths[self.first_used :])
        self.trunk = nn.Sequential(*(conv_bn_relu(head_width, head_width) for _ in range(head_depth)))
        self.classes = nn.Conv2d(head_width, num_classes + 1, 3, padding=1)
        self.boxes = nn.Conv2d(head_width, 4, 3, padding=1)
        with torch.no_grad():  # start near "background everywhere" and boxes of initial_size strides a side
            self.classes.bias.fill_(-math.log((1 - prior) / prior))
            self.classes.bias[num_classes] = 0.0
            self.boxes.bias.fill_(math.log(math.expm1(initial_size / 2)))
            self.classes.weight.normal_(std=0.01)
            self.boxes.weight.normal_(std=0.01)

    def features(self, images: Tensor) -> Tensor:
        """The feature map at ``stride``: deeper stages upsampled and added (a one-level FPN)."""
        maps = []
        x = images
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        used = maps[self.first_used :]
        top = self.laterals[-1](used[-1])
        for lateral, feature in zip(reversed(self.laterals[:-1]), reversed(used[:-1])):
            top = F.interpolate(top, size=feature.shape[-2:], mode="nearest") + lateral(feature)
        return self.trunk(top)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = self.features(images)
        return self.classes(x), F.softplus(self.boxes(x))

    def locations(self, height: int, width: int, device: torch.device) -> Tensor:
        """Centres ``[h*w, 2]`` (x, y) in pixels of the output grid, row by row."""
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * self.stride
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * self.stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([grid_x.flatten(), grid_y.flatten()], 1)

    def decode(self, ltrb: Tensor, locations: Tensor) -> Tensor:
        """``ltrb [..., L, 4]`` in strides to xyxy boxes in pixels around ``locations [L, 2]``."""
        return torch.cat([locations - ltrb[..., :2] * self.stride, locations + ltrb[..., 2:] * self.stride], -1)


def assign(
    locations: Tensor, boxes: Tensor, labels: Tensor, stride: int, radius: float, background: int
) -> tuple[Tensor, Tensor]:
    """Class target ``[B, L]`` (``background`` where no box) and matched box ``[B, L, 4]`` of each location.

    A location is a candidate for a box when it lies inside the box and within ``radius * stride`` of
    its centre (FCOS centre sampling), or is the location nearest the centre; the smallest box wins.
    ``labels < 0`` mark padding.
    """
    x, y = locations[None, :, None, 0], locations[None, :, None, 1]  # [1, L, 1]
    x1, y1, x2, y2 = (boxes[:, None, :, i] for i in range(4))  # [B, 1, M]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    reach = radius * stride
    inside = (x > x1) & (x < x2) & (y > y1) & (y < y2)
    central = ((x - cx).abs() < reach) & ((y - cy).abs() < reach)
    distance = (x - cx) ** 2 + (y - cy) ** 2  # [B, L, M]
    nearest = F.one_hot(distance.argmin(1), locations.shape[0]).transpose(1, 2).bool()  # [B, L, M]
    valid = (labels >= 0)[:, None, :]
    candidate = ((inside & central) | nearest) & valid
    area = ((x2 - x1) * (y2 - y1)).expand_as(candidate)
    area = torch.where(candidate, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(2)  # [B, L]
    positive = torch.isfinite(best_area)
    classes = torch.where(positive, labels.gather(1, best), torch.full_like(best, background))
    matched = boxes.gather(1, best[..., None].expand(-1, -1, 4))
    return classes, matched


@torch.no_grad()
def postprocess(
    scores: Tensor,
    boxes: Tensor,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    pre_nms_top_k: int = 1000,
) -> list[dict[str, Tensor]]:
    """Per image: (location, class) pairs above ``score_threshold``, the top ``pre_nms_top_k``, then class-wise NMS.

    ``scores [B, L, K]`` are probabilities, ``boxes [B, L, 4]`` xyxy; returns torchmetrics' detection dicts.
    """
    results = []
    num_classes = scores.shape[-1]
    for image_scores, image_boxes in zip(scores, boxes):
        flat = image_scores.flatten()
        keep = torch.nonzero(flat > score_threshold).squeeze(1)
        if keep.numel() > pre_nms_top_k:
            keep = keep[flat[keep].topk(pre_nms_top_k).indices]
        location, label = keep // num_classes, keep % num_classes
        kept_boxes, kept_scores = image_boxes[location], flat[keep]
        chosen = torchvision.ops.batched_nms(kept_boxes, kept_scores, label, iou_threshold)[:max_detections]
        results.append({"boxes": kept_boxes[chosen], "scores": kept_scores[chosen], "labels": label[chosen]})
    return results
