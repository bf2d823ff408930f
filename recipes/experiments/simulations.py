"""Experiments that need no data and no network: Zheng et al. 2020's box-regression simulation.

Anchors of several scales and aspect ratios are placed around targets of several aspect ratios and
regressed by gradient descent on one box loss alone; the mean IoU and the mean corner error against
iteration show how fast each loss converges, and where it stalls (IoU has no gradient for anchors
that do not overlap their target).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

import losses

ASPECT_RATIOS = (1 / 4, 1 / 3, 1 / 2, 1.0, 2.0, 3.0, 4.0)  # width / height, as in the paper
SCALES = (0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0)  # anchor area relative to the target's area of 1
CENTER = 10.0


def xyxy(cx: Tensor, cy: Tensor, w: Tensor, h: Tensor) -> Tensor:
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def simulation_boxes(points: int, radius: float, seed: int) -> tuple[Tensor, Tensor]:
    """Every (anchor, target) pair: ``points`` centres uniform in a disc x scales x ratios x targets."""
    g = torch.Generator().manual_seed(seed)
    r = radius * torch.rand(points, generator=g, dtype=torch.float64).sqrt()
    theta = 2 * math.pi * torch.rand(points, generator=g, dtype=torch.float64)
    cx, cy = CENTER + r * theta.cos(), CENTER + r * theta.sin()
    ratios = torch.tensor(ASPECT_RATIOS, dtype=torch.float64)
    scales = torch.tensor(SCALES, dtype=torch.float64)
    # anchors: point x scale x ratio; targets: ratio (area 1, at the centre)
    aw = (scales[:, None] * ratios[None, :]).sqrt()  # [S, R]
    ah = (scales[:, None] / ratios[None, :]).sqrt()
    anchors = xyxy(cx[:, None, None], cy[:, None, None], aw[None], ah[None]).reshape(-1, 4)
    tw, th = ratios.sqrt(), (1 / ratios).sqrt()
    targets = xyxy(torch.full_like(tw, CENTER), torch.full_like(tw, CENTER), tw, th)
    n_anchor, n_target = anchors.shape[0], targets.shape[0]
    return anchors.repeat_interleave(n_target, 0), targets.repeat(n_anchor, 1)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise IoU of matching rows of two xyxy tensors."""
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clamp_min(0).prod(-1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def regress(loss_name: str, anchors: Tensor, targets: Tensor, iterations: int, lr: float) -> dict[str, list[float]]:
    """Gradient descent on one loss; the step is scaled by (2 - IoU) as in the paper. Curves per iteration."""
    loss = losses.build(loss_name, reduction="sum")
    boxes = anchors.clone().requires_grad_(True)
    curves: dict[str, list[float]] = {"iou": [], "l1": []}
    for _ in range(iterations + 1):
        with torch.no_grad():
            iou = box_iou(boxes, targets)
            curves["iou"].append(float(iou.mean()))
            curves["l1"].append(float((boxes - targets).abs().sum(-1).mean()))
        value = loss(boxes, targets)
        (grad,) = torch.autograd.grad(value, boxes)
        with torch.no_grad():
            boxes -= lr * (2 - iou)[:, None] * torch.nan_to_num(grad)
    return curves


def plot_curves(results: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Mean IoU and mean corner error against iteration, one line per loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, curves in results.items():
        axes[0].plot(curves["iou"], label=name)
        axes[1].plot(curves["l1"], label=name)
    axes[0].set(xlabel="iteration", ylabel="mean IoU with target")
    axes[1].set(xlabel="iteration", ylabel="mean |corner error| (sum over 4)", yscale="log")
    axes[0].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def box_regression(
    output_dir: str,
    loss_names: list[str] = ("l1", "iou", "giou", "diou", "ciou"),
    points: int = 200,
    radius: float = 3.0,
    iterations: int = 200,
    lr: float = 0.1,
    seed: int = 0,
) -> dict[str, float]:
    """Run the simulation for each loss; write curves (JSON) and a plot; return final IoU and error."""
    anchors, targets = simulation_boxes(points, radius, seed)
    results = {name: regress(name, anchors, targets, iterations, lr) for name in loss_names}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "box_regression_simulation.json").write_text(json.dumps({"cases": len(anchors), "curves": results}))
    plot_curves(results, out / "images" / "box_regression_simulation.png")
    metrics = {}
    for name, curves in results.items():
        metrics[f"sim/{name}/final_iou"] = curves["iou"][-1]
        metrics[f"sim/{name}/final_l1"] = curves["l1"][-1]
    return metrics
