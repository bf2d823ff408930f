"""References for the regression losses: torch.nn.functional where it has the loss, the formula otherwise."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bench.references.common import reduce_reference


def torch_mse(pred, target, reduction):
    return F.mse_loss(pred, target, reduction=reduction)


def torch_l1(pred, target, reduction):
    return F.l1_loss(pred, target, reduction=reduction)


def torch_huber(pred, target, reduction, delta=1.0):
    return F.huber_loss(pred, target, reduction=reduction, delta=delta)


def torch_smooth_l1(pred, target, reduction, beta=1.0):
    return F.smooth_l1_loss(pred, target, reduction=reduction, beta=beta)


def hand_log_cosh(pred, target, reduction):
    return reduce_reference(torch.log(torch.cosh(pred - target)), reduction)  # the plain formula: residuals of order 1


def hand_pinball(pred, target, reduction, tau):
    taus = torch.tensor(tau, dtype=pred.dtype, device=pred.device)
    r = (target.unsqueeze(-1) if taus.ndim else target) - pred
    values = torch.where(r >= 0, taus * r, (taus - 1) * r)
    return reduce_reference(values, reduction)


def hand_mape(pred, target, reduction, eps=1e-8):
    return reduce_reference((pred - target).abs() / target.abs().clamp_min(eps), reduction)


def hand_msle(pred, target, reduction):
    return reduce_reference((torch.log(1 + pred) - torch.log(1 + target)) ** 2, reduction)


def torch_poisson(pred, target, reduction, log_input=True, full=False, eps=1e-8):
    return F.poisson_nll_loss(pred, target, log_input=log_input, full=full, eps=eps, reduction=reduction)


def torch_gaussian(mean, target, var, reduction, full=False, eps=1e-6):
    return F.gaussian_nll_loss(mean, target, var, full=full, eps=eps, reduction=reduction)


def hand_gaussian_full(mean, target, var, reduction, full=True, eps=1e-6):
    var = var.clamp_min(eps)
    values = 0.5 * (torch.log(var) + (mean - target) ** 2 / var) + 0.5 * math.log(2 * math.pi) * full
    return reduce_reference(values, reduction)
