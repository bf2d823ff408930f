"""Experiments that need no data and no network: Zheng et al. 2020's box-regression simulation.

Anchors of several scales and aspect ratios are placed around targets of several aspect ratios and
regressed by gradient descent on one box loss alone; the mean IoU and the mean corner error against
iteration show how fast each loss converges, and where it stalls (IoU has no gradient for anchors
that do not overlap their target). The paper's procedure is the default: the boxes are regressed as centre
and size (x, y, w, h) at a learning rate of 0.1, divided by 10 at iterations 161 and 181; a constant rate on
the corners (x1, y1, x2, y2) is the other option (``lr_steps=[]``, ``parameterisation=xyxy``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

import losses
from losses.errors import check, check_integer, check_number

ASPECT_RATIOS = (1 / 4, 1 / 3, 1 / 2, 1.0, 2.0, 3.0, 4.0)  # width / height, as in the paper
SCALES = (0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0)  # anchor area relative to the target's area of 1
CENTER = 10.0


PARAMETERISATIONS = ("xywh", "xyxy")  # what gradient descent moves: centre and size (the paper's), or the corners
MIN_SIZE = 1e-6  # a width or height that a step would make negative stays at this
CHECKPOINTS = (10, 50, 160, 180)  # iterations whose mean IoU is reported next to the final one


def xyxy(cx: Tensor, cy: Tensor, w: Tensor, h: Tensor) -> Tensor:
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def to_xywh(boxes: Tensor) -> Tensor:
    """xyxy rows as (centre x, centre y, width, height)."""
    return torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], dim=-1)


def learning_rate(iteration: int, lr: float, lr_steps: list[int] | tuple[int, ...], lr_decay: float) -> float:
    """The rate of ``iteration`` (from 1): ``lr`` times ``lr_decay`` for each of ``lr_steps`` reached."""
    return lr * lr_decay ** sum(iteration >= step for step in lr_steps)


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


def regress(
    loss_name: str,
    anchors: Tensor,
    targets: Tensor,
    iterations: int,
    lr: float,
    lr_steps: list[int] | tuple[int, ...] = (),
    lr_decay: float = 0.1,
    parameterisation: str = "xyxy",
) -> dict[str, list[float]]:
    """Gradient descent on one loss; the step is scaled by (2 - IoU) as in the paper. Curves per iteration.

    ``parameterisation`` is what the step moves: ``xywh`` (centre and size, the paper's) or ``xyxy`` (corners).
    """
    loss = losses.build(loss_name, reduction="sum")
    params = (to_xywh(anchors) if parameterisation == "xywh" else anchors).clone().requires_grad_(True)
    as_boxes = (lambda p: xyxy(*p.unbind(-1))) if parameterisation == "xywh" else (lambda p: p)
    curves: dict[str, list[float]] = {"iou": [], "l1": []}
    for iteration in range(1, iterations + 2):  # iteration iterations + 1 only records the final boxes
        boxes = as_boxes(params)
        with torch.no_grad():
            iou = box_iou(boxes, targets)
            curves["iou"].append(float(iou.mean()))
            curves["l1"].append(float((boxes - targets).abs().sum(-1).mean()))
        if iteration > iterations:
            break
        (grad,) = torch.autograd.grad(loss(boxes, targets), params)
        with torch.no_grad():
            params -= learning_rate(iteration, lr, lr_steps, lr_decay) * (2 - iou)[:, None] * torch.nan_to_num(grad)
            if parameterisation == "xywh":
                params[:, 2:].clamp_(min=MIN_SIZE)
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
    lr_steps: list[int] | tuple[int, ...] = (161, 181),
    lr_decay: float = 0.1,
    parameterisation: str = "xywh",
) -> dict[str, float]:
    """Run the simulation for each loss; write curves (JSON), metrics (``metrics.json``) and a plot; return the
    mean IoU at a few iterations and at the end, and the final corner error.

    The defaults are the paper's procedure (lr 0.1, x0.1 from iterations 161 and 181, centre and size).
    """
    owner = "run 'box_regression'"
    check_integer(owner, "iterations", iterations, low=1)
    check_number(owner, "lr", lr, low=0)
    check_number(owner, "lr_decay", lr_decay, low=0)
    check(owner, all(isinstance(s, int) and s >= 1 for s in lr_steps), "lr_steps must be iterations >= 1", list(lr_steps))
    need = f"parameterisation must be one of {', '.join(PARAMETERISATIONS)}"
    check(owner, parameterisation in PARAMETERISATIONS, need, parameterisation)
    anchors, targets = simulation_boxes(points, radius, seed)
    steps = list(lr_steps)
    results = {name: regress(name, anchors, targets, iterations, lr, steps, lr_decay, parameterisation) for name in loss_names}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "box_regression_simulation.json").write_text(json.dumps({"cases": len(anchors), "curves": results}))
    plot_curves(results, out / "images" / "box_regression_simulation.png")
    metrics = {}
    for name, curves in results.items():
        metrics[f"sim/{name}/final_iou"] = curves["iou"][-1]
        metrics[f"sim/{name}/final_l1"] = curves["l1"][-1]
        for at in CHECKPOINTS:  # the convergence the paper's Fig. 3 shows, as numbers
            metrics[f"sim/{name}/iou_at_{at}"] = curves["iou"][min(at, iterations)]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))  # what recipes.results.report reads
    return metrics
