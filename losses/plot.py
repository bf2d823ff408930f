"""Draw each loss and its gradient against one variable into ``docs/img/``: ``python -m losses.plot``.

How the one-dimensional inputs are built (``reduction='none'``, float64, one grid point per sample):

- regression (every registered loss of that kind): against the residual ``r = pred - target`` with
  ``target = 1`` and ``pred = 1 + r`` (1 rather than 0, so that mape and msle are defined there);
  any further ``forward`` argument (gaussian_nll's variance) is 1. The gradient is d loss / d pred.
- the margin family, each against its own variable (only those registered; the others are skipped):
  - ``hinge``: the score ``s`` of a positive example (``y = +1``), so ``y * s`` is the margin;
  - ``hinge_embedding``, ``contrastive``: the Euclidean distance ``d`` of ``emb1 = (d, 0)`` from
    ``emb2 = (0, 0)``, for similar (``y = +1``) and dissimilar (``y = -1``) pairs;
  - ``cosine_embedding``: the cosine ``c`` of ``emb1 = (c, sqrt(1 - c^2))`` and ``emb2 = (1, 0)``, for y = +1 and -1;
  - ``triplet``: ``d(a, p) - d(a, n)`` with the anchor at 0, the negative at distance 2, the positive at ``t``;
  - ``margin_ranking``: ``s(a, p) - s(a, n)`` of cosine similarities, with ``s(a, n) = 0``.

Points where a loss refuses its input (msle at ``pred <= -1``) are left out of the curve, and each
panel's y axis spans the 2nd to 98th percentile of its values (padded), so one blow-up does not flatten it.
"""

from __future__ import annotations

import argparse
import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

import losses
from losses.registry import spec

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "img"
POINTS = 301

Inputs = Callable[[Tensor], tuple[Tensor, ...]]


@dataclass(frozen=True)
class Variant:
    """One curve of a loss: how to turn the plotted variable into ``forward``'s arguments."""

    label: str
    make_inputs: Inputs
    shift: float = 0.0  # the plotted x is the variable plus this (triplet plots d(a,p) - d(a,n))


@dataclass(frozen=True)
class Plan:
    """What to vary for one loss: the variable's name and grid, and the curves to draw."""

    xlabel: str
    low: float
    high: float
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Curve:
    """Loss values and their derivative with respect to the plotted variable (NaN where refused)."""

    label: str
    x: Tensor
    value: Tensor
    grad: Tensor


def _zeros(t: Tensor) -> Tensor:
    return torch.zeros_like(t)


def _point(a: Tensor, b: Tensor) -> Tensor:
    return torch.stack([a, b], dim=1)


def _on_circle(c: Tensor) -> Tensor:
    """Unit vectors whose cosine with (1, 0) is ``c``."""
    return _point(c, torch.sqrt(1 - c**2))


def _signs(t: Tensor, y: float) -> Tensor:
    return torch.full_like(t, y)


def _distance_pairs(y: float) -> Inputs:
    return lambda d: (_point(d, _zeros(d)), _point(_zeros(d), _zeros(d)), _signs(d, y))


def _cosine_pairs(y: float) -> Inputs:
    return lambda c: (_on_circle(c), _point(torch.ones_like(c), _zeros(c)), _signs(c, y))


def _triplets(t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Anchor at 0, positive at distance ``t`` along x, negative at distance 2 along y."""
    return _point(_zeros(t), _zeros(t)), _point(t, _zeros(t)), _point(_zeros(t), torch.full_like(t, 2.0))


def _ranked_triplets(c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Anchor (1, 0); positive at cosine ``c`` with it; negative (0, 1), at cosine 0."""
    return _point(torch.ones_like(c), _zeros(c)), _on_circle(c), _point(_zeros(c), torch.ones_like(c))


PAIR_VARIANTS = (Variant("similar (y = +1)", _distance_pairs(1.0)), Variant("dissimilar (y = -1)", _distance_pairs(-1.0)))

MARGIN: dict[str, Plan] = {
    "hinge": Plan("score s (y = +1)", -2.0, 3.0, (Variant("y = +1", lambda s: (s, torch.ones_like(s))),)),
    "hinge_embedding": Plan("distance d(emb1, emb2)", 0.01, 3.0, PAIR_VARIANTS),
    "contrastive": Plan("distance d(emb1, emb2)", 0.01, 3.0, PAIR_VARIANTS),
    "cosine_embedding": Plan(
        "cosine similarity",
        -0.99,
        0.99,
        (Variant("similar (y = +1)", _cosine_pairs(1.0)), Variant("dissimilar (y = -1)", _cosine_pairs(-1.0))),
    ),
    "triplet": Plan(
        "d(a, p) - d(a, n)",
        0.01,
        3.0,
        (Variant("d(a, n) = 2", _triplets, shift=-2.0),),
    ),
    "margin_ranking": Plan(
        "s(a, p) - s(a, n) (cosine)",
        -0.99,
        0.99,
        (Variant("s(a, n) = 0", _ranked_triplets),),
    ),
}


def regression_plan(name: str) -> Plan:
    """Residual ``r`` on [-3, 3]: ``pred = 1 + r``, ``target = 1``, further required forward arguments 1."""
    params = list(inspect.signature(spec(name).cls.forward).parameters.values())[1:]  # after self
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    extra = max(len(required) - 2, 0)

    def make_inputs(r: Tensor) -> tuple[Tensor, ...]:
        return (1 + r, torch.ones_like(r), *[torch.ones_like(r) for _ in range(extra)])

    return Plan("residual r = pred - target (target = 1)", -3.0, 3.0, (Variant("", make_inputs),))


def evaluate(loss: torch.nn.Module, make_inputs: Inputs, t: Tensor) -> tuple[Tensor, Tensor]:
    """Per-point loss values and d loss / d t; points the loss refuses become NaN."""
    try:
        return _evaluate(loss, make_inputs, t)
    except (ValueError, RuntimeError):
        pass
    values, grads = torch.full_like(t, math.nan), torch.full_like(t, math.nan)
    for i in range(len(t)):  # one point at a time, to keep the points the loss accepts
        try:
            v, g = _evaluate(loss, make_inputs, t[i : i + 1])
        except (ValueError, RuntimeError):
            continue
        values[i], grads[i] = v[0], g[0]
    return values, grads


def _evaluate(loss: torch.nn.Module, make_inputs: Inputs, t: Tensor) -> tuple[Tensor, Tensor]:
    t = t.detach().clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. mape's near-zero warning: the curve shows it
        values = loss(*make_inputs(t))
    if values.shape != t.shape:
        raise RuntimeError(f"loss '{getattr(loss, 'name', loss)}' gave shape {tuple(values.shape)} for {len(t)} points")
    (grad,) = torch.autograd.grad(values.sum(), t)
    return values.detach(), grad


def curves(name: str, plan: Plan, points: int = POINTS) -> list[Curve]:
    """Every curve of loss ``name`` (built with its defaults, ``reduction='none'``) along ``plan``."""
    loss = losses.build(name, reduction="none")
    t = torch.linspace(plan.low, plan.high, points, dtype=torch.float64)
    out = []
    for variant in plan.variants:
        value, grad = evaluate(loss, variant.make_inputs, t)
        out.append(Curve(variant.label, t + variant.shift, value, grad))
    return out


def family_plans() -> dict[str, dict[str, Plan]]:
    """The plotted families and, for each, the registered losses in it with their plans."""
    registered = set(losses.available())
    return {
        "regression": {name: regression_plan(name) for name in losses.available("regression")},
        "margin": {name: plan for name, plan in MARGIN.items() if name in registered},
    }


def y_limits(drawn: list[Curve], cut: float = 0.02) -> tuple[float, float] | None:
    """The y range between the ``cut`` and ``1 - cut`` quantiles of every value, padded, so that a
    blow-up at the edge of the grid (msle as pred -> -1) does not flatten the rest of the panel."""
    ys = torch.cat([torch.cat([c.value, c.grad]) for c in drawn])
    ys = ys[torch.isfinite(ys)]
    if not ys.numel():
        return None
    low, high = float(torch.quantile(ys, cut)), float(torch.quantile(ys, 1 - cut))
    low, high = min(low, 0.0), max(high, 0.0)
    pad = 0.1 * (high - low) or 1.0
    return low - pad, high + pad


def draw(family: str, plans: dict[str, Plan], path: Path, points: int = POINTS) -> Path:
    """One panel per loss: the loss (solid) and its gradient (dashed) against the plan's variable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(plans))
    rows = math.ceil(len(plans) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(plans) :]:
        ax.axis("off")
    for ax, (name, plan) in zip(axes.flat, plans.items()):
        drawn = curves(name, plan, points)
        for i, curve in enumerate(drawn):
            if bool(curve.value.isnan().all()):
                print(f"{family}: {name!r} refused every point of its curve {curve.label!r}; its panel is empty")
            color = f"C{i}"
            suffix = f", {curve.label}" if curve.label else ""
            ax.plot(curve.x, curve.value, color=color, label=f"loss{suffix}")
            ax.plot(curve.x, curve.grad, color=color, linestyle="--", label=f"gradient{suffix}")
        ax.axhline(0, color="0.8", linewidth=0.8, zorder=0)
        limits = y_limits(drawn)
        if limits is not None:
            ax.set_ylim(*limits)
        ax.set_title(name)
        ax.set_xlabel(plan.xlabel, fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle(f"{family} losses (defaults) and their gradients")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_all(out: Path = OUTPUT, points: int = POINTS, log: Callable[[str], None] = print) -> list[Path]:
    """Write ``<out>/regression.png`` and ``<out>/margin.png`` for the losses registered now."""
    registered = set(losses.available())
    for name in MARGIN:
        if name not in registered:
            log(f"margin family: skipping {name!r}, not registered")
    written = []
    for family, plans in family_plans().items():
        if not plans:
            log(f"{family}: no registered losses to draw; {out / (family + '.png')} not written")
            continue
        written.append(draw(family, plans, out / f"{family}.png", points))
        log(f"wrote {written[-1]} ({', '.join(plans)})")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m losses.plot", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUTPUT, help="folder for the PNG files (default docs/img)")
    parser.add_argument("--points", type=int, default=POINTS, help="grid points per curve")
    args = parser.parse_args(argv)
    plot_all(args.out, args.points)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
