"""Reference cases for the regression losses: inputs, and the references in ``bench/references/regression.py``."""

from __future__ import annotations

import torch

from bench.references.regression import (
    hand_gaussian_full,
    hand_log_cosh,
    hand_mape,
    hand_msle,
    hand_pinball,
    torch_gaussian,
    torch_huber,
    torch_l1,
    torch_mse,
    torch_poisson,
    torch_smooth_l1,
)
from tests.losses.conformance import Case, randn

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
