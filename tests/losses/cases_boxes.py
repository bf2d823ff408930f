"""Reference cases for the box losses: valid xyxy boxes against ``bench/references/boxes.py``."""

from __future__ import annotations

import torch

from bench.references.boxes import iou_reference, l1_reference, torchvision_ciou, torchvision_diou, torchvision_giou
from tests.losses.conformance import Case

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


CASES = {
    "l1": [Case(pred_and_target, l1_reference)],
    "iou": [Case(pred_and_target, iou_reference, hparams={"eps": 1e-7})],
    "giou": [Case(pred_and_target, torchvision_giou, hparams={"eps": 1e-7})],
    "diou": [Case(pred_and_target, torchvision_diou, hparams={"eps": 1e-7})],
    # torchvision's CIoU ignores its own eps inside DIoU (always 1e-7), so the case uses the default; its
    # alpha is a constant under autograd, so gradcheck cannot hold: test_boxes.py compares with torchvision's grad
    "ciou": [Case(pred_and_target, torchvision_ciou, gradcheck=False)],
}
