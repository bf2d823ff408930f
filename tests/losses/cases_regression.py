"""Reference cases for the regression losses: torch.nn.functional where it has the loss, the formula otherwise."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tests.losses.conformance import Case, randn, reduce_reference

N, Q = 16, 3
TAUS = [0.1, 0.5, 0.9]


def pred_and_target(g, dtype):
    return randn(g, dtype, N, scale=2.0), randn(g, dtype, N, scale=2.0)


def matrix_pred_and_target(g, dtype):
    return randn(g, dtype, 4, 5, scale=2.0), randn(g, dtype, 4, 5, scale=2.0)


def quantile_preds_and_target(g, dtype):
    return randn(g, dtype, N, Q, scale=2.0), randn(g, dtype, N, scale=2.0)


def away_from_zero(g, dtype):
    """Targets with |y| in [1, 3] and either sign (MAPE), predictions around them."""
    sign = torch.where(torch.rand(N, generator=g) < 0.5, -1.0, 1.0).double()
    target = sign * (1 + 2 * torch.rand(N, generator=g, dtype=torch.float64))
    return (target + randn(g, torch.float64, N)).to(dtype), target.to(dtype)


def above_minus_one(g, dtype):
    """Predictions in (-0.5, 4) and non-negative targets (MSLE)."""
    pred = torch.rand(N, generator=g, dtype=torch.float64) * 4.5 - 0.5
    return pred.to(dtype), (torch.rand(N, generator=g, dtype=torch.float64) * 5).to(dtype)


def log_rates_and_counts(g, dtype):
    log_rate = randn(g, torch.float64, N)
    counts = torch.poisson(log_rate.exp() * 2, generator=g)
    return log_rate.to(dtype), counts.to(dtype)


def rates_and_counts(g, dtype):
    rate = 0.2 + 3 * torch.rand(N, generator=g, dtype=torch.float64)
    return rate.to(dtype), torch.poisson(rate, generator=g).to(dtype)


def mean_target_var(g, dtype):
    mean, target = randn(g, dtype, N, scale=2.0), randn(g, dtype, N, scale=2.0)
    return mean, target, (0.1 + 2 * torch.rand(N, generator=g, dtype=torch.float64)).to(dtype)


def multi_output_mean_per_sample_var(g, dtype):
    mean, target = randn(g, dtype, N, 2), randn(g, dtype, N, 2)
    return mean, target, (0.1 + torch.rand(N, generator=g, dtype=torch.float64)).to(dtype)


def torch_mse(pred, target, reduction):
    return F.mse_loss(pred, target, reduction=reduction)


def torch_l1(pred, target, reduction):
    return F.l1_loss(pred, target, reduction=reduction)


def torch_huber(pred, target, reduction, delta=1.0):
    return F.huber_loss(pred, target, reduction=reduction, delta=delta)


def torch_smooth_l1(pred, target, reduction, beta=1.0):
    return F.smooth_l1_loss(pred, target, reduction=reduction, beta=beta)


def hand_log_cosh(pred, target, reduction):
    return reduce_reference(torch.log(torch.cosh(pred - target)), reduction)


def hand_pinball(pred, target, reduction, tau):
    taus = torch.tensor(tau, dtype=pred.dtype)
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


CASES = {
    "mse": [Case(pred_and_target, torch_mse), Case(matrix_pred_and_target, torch_mse, label="matrix")],
    "mae": [Case(pred_and_target, torch_l1)],
    "huber": [
        Case(pred_and_target, torch_huber, hparams={"delta": 1.0}),
        Case(pred_and_target, torch_huber, hparams={"delta": 0.3}, label="delta-0.3"),
    ],
    "smooth_l1": [
        Case(pred_and_target, torch_smooth_l1, hparams={"beta": 0.5}),
        Case(pred_and_target, torch_smooth_l1, hparams={"beta": 0.0}, label="beta-0"),
    ],
    "log_cosh": [Case(pred_and_target, hand_log_cosh)],
    "quantile": [
        Case(pred_and_target, hand_pinball, hparams={"tau": 0.3}, label="one-tau"),
        Case(quantile_preds_and_target, hand_pinball, hparams={"tau": TAUS}, label="three-taus"),
    ],
    "mape": [Case(away_from_zero, hand_mape)],
    "msle": [Case(above_minus_one, hand_msle)],
    "poisson_nll": [
        Case(log_rates_and_counts, torch_poisson, hparams={"log_input": True, "full": False}, label="log-input"),
        Case(log_rates_and_counts, torch_poisson, hparams={"log_input": True, "full": True}, label="log-input-full"),
        Case(rates_and_counts, torch_poisson, hparams={"log_input": False, "full": True}, label="rates-full"),
    ],
    "gaussian_nll": [
        Case(mean_target_var, torch_gaussian, grad_inputs=(0, 2)),
        Case(mean_target_var, hand_gaussian_full, hparams={"full": True}, grad_inputs=(0, 2), label="full-by-hand"),
        Case(multi_output_mean_per_sample_var, torch_gaussian, grad_inputs=(0, 2), label="per-sample-var"),
    ],
}
