"""Regression losses: ``forward(pred, target)`` (plus the head outputs a loss asks for, e.g. a variance).

``pred`` and ``target`` must have the same shape (a ``[N, 1]`` prediction against a ``[N]`` target is refused
rather than broadcast to ``[N, N]``); integer targets (counts) are accepted and compared as floats.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, TargetNeed, as_float, autocast_off
from losses.registry import register

LOG_2 = math.log(2.0)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def floats(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors in one floating dtype: float32, or float64 when a floating input is float64."""
    dtype = torch.float32
    for t in tensors:
        if t.is_floating_point():
            dtype = torch.promote_types(dtype, as_float(t).dtype)
    return tuple(t.to(dtype) for t in tensors)


def check_pred_target(loss: Loss, pred: Tensor, target: Tensor, shape: tuple[int, ...] | None = None) -> None:
    """``pred`` must be floating point and ``target`` of ``shape`` (default: the prediction's shape)."""
    if not pred.is_floating_point():
        raise loss.input_error("pred", "a floating-point tensor", pred.dtype)
    need = tuple(pred.shape) if shape is None else shape
    if tuple(target.shape) != need:
        need_text = f"of shape {need} to match pred {tuple(pred.shape)} (reshape one of them; no broadcasting)"
        raise loss.input_error("target", need_text, tuple(target.shape))


class PointwiseLoss(Loss):
    """``forward(pred, target)`` of one shape: ``compute``, by default per-element ``values`` then the reduction.

    Losses torch has override ``compute`` with torch's functional kernel, which reduces in the same fused call.
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        check_pred_target(self, pred, target)
        self.check_inputs(pred, target)
        with autocast_off(pred, target):
            pred, target = floats(pred, target)
            return self.compute(pred, target)

    def check_inputs(self, pred: Tensor, target: Tensor) -> None:
        """Value checks of a particular loss (ranges), run before computing."""

    def compute(self, pred: Tensor, target: Tensor) -> Tensor:
        """The reduced loss of floating ``pred`` and ``target``."""
        return self.reduce(self.values(pred, target))

    def values(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError


@register("mse", kind="regression")
class MSE(PointwiseLoss):
    """Squared error ``(pred - target)^2``, as ``torch.nn.MSELoss``; the Gaussian maximum-likelihood loss.

    The default: it estimates the conditional mean, and is pulled by outliers.
    """

    def compute(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(pred, target, reduction=self.reduction)


@register("mae", kind="regression")
class MAE(PointwiseLoss):
    """Absolute error ``|pred - target|``, as ``torch.nn.L1Loss``; estimates the conditional median.

    Robust to outliers in the targets; its gradient does not shrink near the optimum.
    """

    def compute(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(pred, target, reduction=self.reduction)


@register("huber", kind="regression")
class Huber(PointwiseLoss):
    """``r^2 / 2`` for ``|r| < delta``, else ``delta (|r| - delta / 2)``, as ``torch.nn.HuberLoss`` (Huber 1964).

    Squared near zero, linear in the tails: MSE's smooth optimum with MAE's robustness; ``delta`` in target units.
    """

    search_space = {"delta": (0.1, 3.0, "log")}

    citations = ("Huber 1964",)

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.delta = self.check_number("delta", delta, 0.0, low_open=True)

    def compute(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(pred, target, reduction=self.reduction, delta=self.delta)


@register("smooth_l1", kind="regression")
class SmoothL1(PointwiseLoss):
    """``r^2 / (2 beta)`` for ``|r| < beta``, else ``|r| - beta / 2``, as ``torch.nn.SmoothL1Loss`` (Girshick 2015).

    Huber divided by ``beta``: its tails have slope 1 whatever ``beta``; ``beta = 0`` is the L1 loss.
    """

    search_space = {"beta": (0.05, 3.0, "log")}

    citations = ("Girshick 2015",)

    def __init__(self, beta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.beta = self.check_number("beta", beta, 0.0)

    def compute(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(pred, target, reduction=self.reduction, beta=self.beta)  # beta = 0: L1, as ours


@register("log_cosh", kind="regression")
class LogCosh(PointwiseLoss):
    """``log cosh(r)``, computed as ``|r| + softplus(-2|r|) - log 2`` so it stays finite for large residuals.

    Like Huber with ``delta = 1`` but twice differentiable (gradient ``tanh r``); no torch function to match.
    """

    def values(self, pred: Tensor, target: Tensor) -> Tensor:
        r = (pred - target).abs()
        return r + F.softplus(-2.0 * r) - LOG_2


@register("quantile", kind="regression")
class Quantile(Loss):
    """Pinball loss ``max(tau r, (tau - 1) r)`` with ``r = target - pred`` (Koenker & Bassett 1978).

    Estimates the ``tau`` quantile. ``tau`` a float: ``pred`` is shaped like ``target``; a list of Q quantiles:
    ``pred`` is ``[..., Q]`` for a target ``[...]``, and ``mean`` averages over samples and quantiles.
    """

    not_searched = {"tau": "the quantiles to estimate: part of the question, not a knob"}

    citations = ("Koenker & Bassett 1978",)
    head = "quantiles"

    def __init__(self, tau: float | Sequence[float] = 0.5, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.multi = not isinstance(tau, (int, float))
        taus = list(tau) if self.multi else [tau]
        self.check(len(taus) > 0, "tau must be a number or a non-empty list of numbers", tau)
        for t in taus:
            self.check_number("tau", t, 0.0, 1.0, low_open=True, high_open=True)
        repeated = sorted({t for t in taus if taus.count(t) > 1})
        self.check(
            not repeated,
            f"tau must list each quantile once: {repeated} repeated would train outputs to the same quantile; drop the copies",
            tau,
        )
        self.tau = [float(t) for t in taus] if self.multi else float(tau)
        self.register_buffer("taus", torch.tensor(taus, dtype=torch.float64), persistent=False)

    @property
    def num_quantiles(self) -> int:
        return self.taus.numel()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if self.multi:
            if pred.ndim == 0 or pred.shape[-1] != self.num_quantiles:
                raise self.input_error("pred", f"[..., {self.num_quantiles}], one column per tau {self.tau}", tuple(pred.shape))
            check_pred_target(self, pred, target, tuple(pred.shape[:-1]))
        else:
            check_pred_target(self, pred, target)
        with autocast_off(pred, target):
            pred, target = floats(pred, target)
            if self.multi:
                target = target.unsqueeze(-1)
            tau = self.taus.to(pred.dtype) if self.multi else self.tau  # one tau: a Python number, no broadcast
            r = target - pred
            return self.reduce(torch.where(r >= 0, tau * r, (tau - 1) * r))  # one mask, cheaper than maximum


@register("mape", kind="regression")
class MAPE(PointwiseLoss):
    """Mean absolute percentage error ``|pred - target| / max(|target|, eps)``, a fraction (0.1 = 10%).

    As scikit-learn's ``mean_absolute_percentage_error``; for positive targets on very different scales.
    Warns when a target is near zero (below eps, or under 1% of the batch's median |target|): that row dominates.
    """

    def __init__(self, eps: float = 1e-8, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.eps = self.check_number("eps", eps, 0.0, low_open=True)

    def check_inputs(self, pred: Tensor, target: Tensor) -> None:
        if not target.numel() or not self.check_values(target):
            return
        size = target.detach().abs().float()
        smallest, median = float(size.min()), float(size.median())
        if smallest <= self.eps or smallest < 0.01 * median:
            warnings.warn(
                f"loss '{self.name}': a target is near zero (|target| = {smallest:.3g}, median {median:.3g}); "
                "its row weighs 1/|target| and dominates the loss. Use mae, or shift the targets away from zero",
                stacklevel=3,
            )

    def values(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs() / target.abs().clamp_min(self.eps)


@register("msle", kind="regression")
class MSLE(PointwiseLoss):
    """Mean squared logarithmic error ``(log(1 + pred) - log(1 + target))^2``, as scikit-learn's.

    For non-negative targets spanning orders of magnitude: it penalises ratios, not differences.
    Predictions or targets <= -1 are an error (the logarithm is undefined there).
    """

    head = "log1p"
    target_need = TargetNeed(lambda y: y > -1, "> -1")

    def check_inputs(self, pred: Tensor, target: Tensor) -> None:
        for arg, t in (("pred", pred), ("target", target)):
            if t.numel() and self.check_values(t) and float(t.detach().min()) <= -1:
                raise self.input_error(
                    arg,
                    "> -1 everywhere, since log(1 + x) is undefined at x <= -1 (predict log1p(y) and apply expm1, or use mse)",
                    f"{int((t <= -1).sum())} values <= -1, the smallest {float(t.min()):.4g}",
                )

    def values(self, pred: Tensor, target: Tensor) -> Tensor:
        return (torch.log1p(pred) - torch.log1p(target)).square()


@register("poisson_nll", kind="regression")
class PoissonNLL(PointwiseLoss):
    """Poisson negative log-likelihood ``exp(z) - y z`` of log-rates z (``log_input``) or ``rate - y log(rate + eps)``.

    As ``torch.nn.PoissonNLLLoss``, incl. the Stirling term for ``full`` (targets > 1); for count targets.
    """

    target_need = TargetNeed(lambda y: y >= 0, ">= 0 (counts)")

    def __init__(self, log_input: bool = True, full: bool = False, eps: float = 1e-8, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.check(isinstance(log_input, bool), "log_input must be true or false", log_input)
        self.check(isinstance(full, bool), "full must be true or false", full)
        self.log_input, self.full = log_input, full
        self.head = "log_rate" if log_input else "rate"
        self.eps = self.check_number("eps", eps, 0.0, low_open=True)

    def check_inputs(self, pred: Tensor, target: Tensor) -> None:
        if not target.numel() or not self.check_values(target):
            return
        if float(target.detach().min()) < 0:
            raise self.input_error("target", "counts >= 0", f"values down to {float(target.min()):.4g}")
        if not self.log_input and float(pred.detach().min()) < 0:
            need = "rates >= 0 with log_input=false (set log_input=true for log-rates)"
            raise self.input_error("pred", need, f"values down to {float(pred.min()):.4g}")

    def compute(self, pred: Tensor, target: Tensor) -> Tensor:
        # full: Stirling's approximation of log(target!), only where target > 1
        return F.poisson_nll_loss(pred, target, log_input=self.log_input, full=self.full, eps=self.eps, reduction=self.reduction)


@register("gaussian_nll", kind="regression")
class GaussianNLL(Loss):
    """Gaussian negative log-likelihood ``(log var + (mean - target)^2 / var) / 2`` (+ ``log(2 pi) / 2`` if ``full``).

    ``forward(mean, target, var)`` as ``torch.nn.GaussianNLLLoss``: var is clamped at ``eps`` with the gradient
    passing through, negative var is an error; var may be ``[...]``, ``[..., 1]`` or one per sample.
    """

    head = "mean_variance"

    def __init__(self, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.check(isinstance(full, bool), "full must be true or false", full)
        self.full = full
        self.eps = self.check_number("eps", eps, 0.0, low_open=True)

    def forward(self, mean: Tensor, target: Tensor, var: Tensor) -> Tensor:
        check_pred_target(self, mean, target)
        if not var.is_floating_point():
            raise self.input_error("var", "a floating-point tensor", var.dtype)
        if var.shape != mean.shape:
            if mean.shape[:-1] == var.shape:
                var = var.unsqueeze(-1)  # one variance per sample of a multi-output mean
            elif not (mean.shape[:-1] == var.shape[:-1] and var.shape[-1:] == (1,)):
                raise self.input_error(
                    "var", f"of shape {tuple(mean.shape)}, {tuple(mean.shape[:-1])} or {(*mean.shape[:-1], 1)}", tuple(var.shape)
                )
        if var.numel() and self.check_values(var) and float(var.detach().min()) < 0:
            need = "non-negative (0 is clamped to eps, as in torch)"
            raise self.input_error("var", need, f"{int((var < 0).sum())} negative entries")
        with autocast_off(mean, target, var):
            mean, target, var = floats(mean, target, var)
            # torch.nn.functional.gaussian_nll_loss's arithmetic, without its `any(var < 0)` host sync on every
            # call (checked above on the first calls): var clamped at eps in place, unseen by autograd, so the
            # gradient passes through the clamp
            var = var.clone()
            with torch.no_grad():
                var.clamp_(min=self.eps)
            values = 0.5 * (var.log() + (mean - target).square() / var)
            if self.full:
                values = values + HALF_LOG_2PI
            return self.reduce(values)
