"""Distribution losses: ``forward(input, target)`` between two categorical distributions, as torch's KLDivLoss.

The contract of the kind: ``input`` holds the log-probabilities of the model being trained (``log_softmax``
over dim 1), ``target`` the probabilities it should match, or their logarithms when ``log_target=true``.
Temperature, the T^2 factor and the hard-label mix belong to the distillation recipe, not to the loss.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from losses.base import REDUCTIONS, Loss, as_float, autocast_off, reduce, reduction_divisor
from losses.registry import register

DIRECTIONS = ("forward", "reverse")


def check_log_probs(loss: Loss, arg: str, values: Tensor) -> None:
    """Log-probabilities are floats <= 0 whose exponentials sum to one over dim 1 (a warning when not)."""
    if not values.is_floating_point():
        raise loss.input_error(arg, "floating-point log-probabilities", values.dtype)
    if not values.numel() or not loss.check_values(values):
        return
    top = float(values.detach().max())
    if top > 1e-6:
        raise loss.input_error(
            arg, "log-probabilities (every value <= 0, e.g. log_softmax(logits, 1))", f"values up to {top:.4g}"
        )
    if values.ndim >= 2:
        tolerance = 1e-3 if values.dtype in (torch.float32, torch.float64) else 3e-2
        drift = float(torch.logsumexp(values.detach().float(), dim=1).abs().max())
        if drift > tolerance:
            warnings.warn(
                f"loss '{loss.name}': {arg} is not normalised over dim 1 (logsumexp off by {drift:.3g}); "
                "pass log_softmax(logits, 1), not raw logits",
                stacklevel=3,
            )


def check_probs(loss: Loss, arg: str, values: Tensor) -> None:
    """Probabilities are floats in [0, 1] that sum to one over dim 1 (a warning when not)."""
    if not values.is_floating_point():
        raise loss.input_error(arg, "floating-point probabilities", values.dtype)
    if not values.numel() or not loss.check_values(values):
        return
    low, high = float(values.detach().min()), float(values.detach().max())
    if low < 0 or high > 1 + 1e-6:
        hint = "; pass log_target=true if they are log-probabilities" if high <= 0 else ""
        got = f"values from {low:.4g} to {high:.4g}{hint}"
        raise loss.input_error(arg, "probabilities in [0, 1] (e.g. softmax(logits, 1))", got)
    if values.ndim >= 2:
        tolerance = 1e-3 if values.dtype in (torch.float32, torch.float64) else 3e-2
        drift = float((values.detach().float().sum(1) - 1).abs().max())
        if drift > tolerance:
            warnings.warn(f"loss '{loss.name}': {arg} does not sum to 1 over dim 1 (off by {drift:.3g})", stacklevel=3)


def log_ratio_terms(a: Tensor, log_a: Tensor | None, b: Tensor | None, log_b: Tensor | None) -> Tensor:
    """``a (log a - log b)`` per element with 0 log 0 = 0: zero, and zero gradients, where ``a`` is 0.

    Each distribution comes as probabilities (its log None: the log is taken here) or log-probabilities (used
    as given, so a log-probability of -120 keeps its digits after exp underflows to 0). Every log is masked
    before it is taken or used, so no 0 * inf reaches the value or a gradient; where a > 0 and b = 0 the term is
    +inf, as the divergence is. The arithmetic is torch.kl_div's for each form, so elsewhere its values are.
    """
    present = a > 0

    def log(probs: Tensor | None, log_probs: Tensor | None) -> Tensor:
        return torch.where(present, probs, 1.0).log() if log_probs is None else torch.where(present, log_probs, 0.0)

    if log_a is None:  # as torch: xlogy(p, p) - p log q
        other = torch.xlogy(a, torch.where(present, b, 1.0)) if log_b is None else a * log(None, log_b)
        return torch.where(present, torch.xlogy(a, torch.where(present, a, 1.0)) - other, 0.0)
    return torch.where(present, a * (log(None, log_a) - log(b, log_b)), 0.0)


class DistributionLoss(Loss):
    """What kl_div and js_div share: ``log_target``, the input checks, batchmean as the default reduction."""

    reductions = (*REDUCTIONS, "batchmean")

    def __init__(self, log_target: bool = False, reduction: str = "batchmean") -> None:
        super().__init__(reduction)
        self.check(isinstance(log_target, bool), "log_target must be true or false", log_target)
        self.log_target = log_target
        if reduction == "mean":
            warnings.warn(
                f"loss '{self.name}': reduction='mean' averages over batch and classes, so its value is the "
                "divergence divided by the number of classes; use reduction='batchmean' for the divergence per sample",
                stacklevel=3,
            )

    def check_inputs(self, input: Tensor, target: Tensor) -> None:
        """Same shapes; input log-probabilities; target probabilities (log-probabilities with ``log_target``)."""
        if input.shape != target.shape:
            raise self.input_error("target", f"the input's shape {tuple(input.shape)}", tuple(target.shape))
        check_log_probs(self, "input", input)
        (check_log_probs if self.log_target else check_probs)(self, "target", target)


class ForwardKL(torch.autograd.Function):
    """KL(p || q), reduced, from log q and probabilities p that need no gradient, for CPU tensors: torch's kernel for
    the value, the mask only when the value is NaN (a scalar read, free on a CPU), and the gradient ``-p / n`` in one
    pass (autograd through ``masked_fill`` and ``kl_div`` takes three: the forward and backward of both)."""

    @staticmethod
    def forward(ctx: Any, log_q: Tensor, p: Tensor, reduction: str) -> Tensor:
        value = F.kl_div(log_q, p, reduction=reduction)
        # 0 * -inf where p and q are both 0, or a NaN input: the masked form tells them apart. This path is CPU-only,
        # so the value is read from host memory (numpy, no device sync; the device paths read nothing back)
        if math.isnan(value.numpy()):
            value = F.kl_div(log_q.masked_fill(p == 0, 0.0), p, reduction=reduction)
        ctx.save_for_backward(p)
        ctx.divisor = reduction_divisor(p, reduction)
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (p,) = ctx.saved_tensors
        return p * (grad / -ctx.divisor), None, None


def finite_log(probs: Tensor, log_probs: Tensor | None = None) -> Tensor:
    """log ``probs`` (or ``log_probs`` as given), finite where a probability is 0, so that 0 * log is 0 without a mask:
    probabilities below the smallest normal float (0 included) are raised to it, a log of -inf to the most negative float."""
    info = torch.finfo(probs.dtype)
    return probs.clamp_min(info.tiny).log_() if log_probs is None else log_probs.clamp_min(info.min)


class JensenShannon(torch.autograd.Function):
    """JS(p, q) from log q and a p (probabilities, or their logs) that needs no gradient: ``1/2 [p (log p - log m) +
    q (log q - log m)]`` with finite logs (``finite_log``) instead of masks and ``xlogy`` (6x a log on CPU), and the
    gradient in log q, ``1/2 q (log q - log m)`` (0 where q is 0), kept from the forward and scaled in one pass."""

    @staticmethod
    def forward(ctx: Any, log_q: Tensor, p: Tensor, log_p: Tensor | None, reduction: str) -> Tensor:
        q = log_q.exp()
        log_m = finite_log((p + q).mul_(0.5))
        by_q = (finite_log(q, log_q) - log_m).mul_(q)
        values = (finite_log(p, log_p) - log_m).mul_(p).add_(by_q)
        ctx.save_for_backward(by_q)
        ctx.divisor = reduction_divisor(values, reduction)
        return reduce(values, reduction).mul(0.5)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        (by_q,) = ctx.saved_tensors
        return by_q * (grad * (0.5 / ctx.divisor)), None, None, None


@register("kl_div", kind="distribution")
class KLDiv(DistributionLoss):
    """KL divergence ``sum_c p_c (log p_c - log q_c)`` with q = exp(input), p = target: ``torch.nn.KLDivLoss``.

    ``direction=forward`` is KL(p || q), mean-seeking (q spreads over every mode of p; distillation);
    ``reverse`` is KL(q || p), mode-seeking (q settles on one mode). batchmean gives the KL per sample.
    """

    def __init__(self, direction: str = "forward", log_target: bool = False, reduction: str = "batchmean") -> None:
        super().__init__(log_target, reduction)
        self.check(direction in DIRECTIONS, f"direction must be one of {', '.join(DIRECTIONS)}", direction)
        self.direction = direction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        self.check_inputs(input, target)
        with autocast_off(input, target):
            log_q, target = as_float(input), as_float(target)
            if self.direction == "forward" and not self.log_target and not target.requires_grad:
                # torch's kernel, xlogy(p, p) - p log q; log q masked to 0 where p is 0, so a -inf there (an exact
                # zero of q) adds 0, not 0 * inf. A target that needs its gradient takes the masked path below,
                # since torch's gradient in p is NaN at p = 0
                if self.reduction != "none" and log_q.device.type == "cpu" and not torch.compiler.is_compiling():
                    return ForwardKL.apply(log_q, target, self.reduction)
                return F.kl_div(log_q.masked_fill(target == 0, 0.0), target, reduction=self.reduction)
            p, log_p = (target.exp(), target) if self.log_target else (target, None)
            if self.direction == "forward":
                values = log_ratio_terms(p, log_p, None, log_q)
            else:
                values = log_ratio_terms(log_q.exp(), log_q, p, log_p)
            return self.reduce(values)


@register("js_div", kind="distribution")
class JSDiv(DistributionLoss):
    """Jensen-Shannon divergence ``1/2 KL(p || m) + 1/2 KL(q || m)``, m = (p + q) / 2 (Lin 1991), in nats.

    Symmetric and bounded by log 2, so it has no direction and stays finite where one distribution is zero.
    """

    citations = ("Lin 1991",)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        self.check_inputs(input, target)
        with autocast_off(input, target):
            input, target = as_float(input), as_float(target)
            p, log_p = (target.exp(), target) if self.log_target else (target, None)
            if not target.requires_grad:
                return JensenShannon.apply(input, p, log_p, self.reduction)
            # a target that needs its gradient: autograd through the masked terms (0 at p = 0, not -inf)
            q = input.exp()
            m = (p + q) / 2
            values = 0.5 * (log_ratio_terms(p, None, m, None) + log_ratio_terms(q, None, m, None))
            return self.reduce(values)
