"""Regression losses: their pitfall guards, edge values, shapes, and properties the references do not show."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import losses
from losses import ConfigError

POINTWISE = ["mse", "mae", "huber", "smooth_l1", "log_cosh", "mape", "msle", "poisson_nll", "quantile"]


@pytest.mark.parametrize("residual", [100.0, -100.0, 1e4])
def test_log_cosh_is_finite_with_finite_gradient_at_large_residuals_in_float32(residual):
    pred = torch.tensor([residual], dtype=torch.float32, requires_grad=True)
    value = losses.build("log_cosh")(pred, torch.zeros(1))
    value.backward()
    assert math.isinf(torch.log(torch.cosh(torch.tensor(residual))).item())  # the naive form overflows here
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(abs(residual) - math.log(2), rel=1e-6)
    assert pred.grad.item() == pytest.approx(math.copysign(1.0, residual))  # d/dr log cosh r = tanh r


def test_log_cosh_gradient_is_tanh_of_the_residual():
    pred = torch.linspace(-5, 5, 41, dtype=torch.float64, requires_grad=True)
    target = torch.full_like(pred, 0.25)
    losses.build("log_cosh", reduction="sum")(pred, target).backward()
    torch.testing.assert_close(pred.grad, torch.tanh(pred.detach() - 0.25))


def test_mape_warns_when_a_target_is_near_zero():
    pred, target = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1e-4, 2.0, 3.0])
    with pytest.warns(UserWarning, match="loss 'mape': a target is near zero"):
        value = losses.build("mape")(pred, target)
    assert value.item() > 1000  # the near-zero row dominates, as the warning says


def test_mape_warns_when_a_target_is_exactly_zero_and_stays_finite():
    with pytest.warns(UserWarning, match="near zero"):
        value = losses.build("mape", eps=1e-3)(torch.tensor([0.5, 2.0]), torch.tensor([0.0, 2.0]))
    assert value.item() == pytest.approx((0.5 / 1e-3) / 2)


def test_mape_is_silent_for_targets_away_from_zero_and_is_a_fraction():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = losses.build("mape")(torch.tensor([110.0, 45.0]), torch.tensor([100.0, 50.0]))
    assert value.item() == pytest.approx(0.1)


@pytest.mark.parametrize("arg", ["pred", "target"])
def test_msle_refuses_values_at_or_below_minus_one(arg):
    pred, target = torch.tensor([0.5, 2.0]), torch.tensor([1.0, 3.0])
    bad = {"pred": pred, "target": target}
    bad[arg] = torch.tensor([-1.0, 2.0])
    with pytest.raises(ValueError, match=rf"loss 'msle': {arg} must be > -1 everywhere.*1 values <= -1"):
        losses.build("msle")(bad["pred"], bad["target"])


def test_msle_equals_mse_of_log1p():
    pred, target = torch.tensor([0.0, 9.0, 99.0]), torch.tensor([1.0, 9.0, 9.0])
    expected = F.mse_loss(torch.log1p(pred), torch.log1p(target))
    torch.testing.assert_close(losses.build("msle")(pred, target), expected)


def test_gaussian_nll_refuses_negative_variance_like_torch():
    mean, target, var = torch.zeros(3), torch.ones(3), torch.tensor([1.0, -0.1, 1.0])
    with pytest.raises(ValueError, match="negative"):
        F.gaussian_nll_loss(mean, target, var)
    with pytest.raises(ValueError, match=r"loss 'gaussian_nll': var must be non-negative .*1 negative entries"):
        losses.build("gaussian_nll")(mean, target, var)


def test_gaussian_nll_clamps_zero_variance_at_eps_with_torch_values_and_gradients():
    mean = torch.tensor([0.0, 0.5, 1.0], requires_grad=True)
    var = torch.tensor([0.0, 1e-9, 2.0], requires_grad=True)
    target = torch.tensor([0.0, 0.5001, 0.0])
    ours = losses.build("gaussian_nll", eps=1e-6)(mean, target, var)
    ours.backward()
    our_grads = mean.grad.clone(), var.grad.clone()
    mean.grad = var.grad = None
    F.gaussian_nll_loss(mean, target, var, eps=1e-6).backward()
    assert torch.isfinite(ours)
    torch.testing.assert_close(ours, F.gaussian_nll_loss(mean.detach(), target, var.detach(), eps=1e-6))
    torch.testing.assert_close(our_grads[0], mean.grad)
    torch.testing.assert_close(our_grads[1], var.grad)


def test_gaussian_nll_accepts_torch_shapes_for_var_and_refuses_others():
    loss = losses.build("gaussian_nll", reduction="none")
    mean, target = torch.randn(4, 3), torch.randn(4, 3)
    for var in (torch.rand(4, 3) + 0.1, torch.rand(4, 1) + 0.1, torch.rand(4) + 0.1):
        torch.testing.assert_close(loss(mean, target, var), F.gaussian_nll_loss(mean, target, var, reduction="none"))
    with pytest.raises(ValueError, match=r"loss 'gaussian_nll': var must be of shape \(4, 3\)"):
        loss(mean, target, torch.rand(4, 2) + 0.1)


@pytest.mark.parametrize("name", POINTWISE)
def test_a_column_prediction_against_a_flat_target_is_refused_not_broadcast(name):
    pred, target = torch.rand(8, 1) + 0.5, torch.rand(8) + 0.5
    with pytest.raises(ValueError, match=rf"loss '{name}': target must be of shape \(8, 1\) to match pred"):
        losses.build(name)(pred, target)


def test_integer_predictions_are_refused():
    with pytest.raises(ValueError, match="loss 'mse': pred must be a floating-point tensor"):
        losses.build("mse")(torch.ones(3, dtype=torch.long), torch.ones(3))


def test_quantile_with_several_taus_wants_one_column_per_tau():
    loss = losses.build("quantile", tau=[0.1, 0.9])
    assert loss(torch.randn(8, 2), torch.randn(8)).shape == ()
    assert losses.build("quantile", tau=[0.1, 0.9], reduction="none")(torch.randn(8, 2), torch.randn(8)).shape == (8, 2)
    with pytest.raises(ValueError, match=r"loss 'quantile': pred must be \[\.\.\., 2\], one column per tau"):
        loss(torch.randn(8, 3), torch.randn(8))
    with pytest.raises(ValueError, match=r"target must be of shape \(8,\)"):
        loss(torch.randn(8, 2), torch.randn(8, 2))


def test_quantile_list_of_one_tau_equals_the_float_tau_and_median_is_half_mae():
    pred, target = torch.randn(10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    one = losses.build("quantile", tau=0.3)(pred, target)
    torch.testing.assert_close(losses.build("quantile", tau=[0.3])(pred.unsqueeze(-1), target), one)
    torch.testing.assert_close(losses.build("quantile", tau=0.5)(pred, target), 0.5 * F.l1_loss(pred, target))


def test_minimising_the_pinball_loss_finds_the_empirical_quantiles():
    target = torch.randn(501, generator=torch.Generator().manual_seed(0), dtype=torch.float64) ** 3
    taus = [0.1, 0.5, 0.8]
    loss = losses.build("quantile", tau=taus, reduction="none")
    # the pinball loss of a constant is convex and piecewise linear, so its minimum lies at a data point
    candidates = target.sort().values
    cost = torch.stack([loss(c.expand(len(target), 3), target).mean(0) for c in candidates])  # [candidate, tau]
    best = candidates[cost.argmin(0)]
    torch.testing.assert_close(best, torch.quantile(target, torch.tensor(taus, dtype=torch.float64), interpolation="nearest"))


def test_huber_is_smooth_l1_times_delta_and_smooth_l1_at_beta_zero_is_mae():
    pred, target = torch.randn(20, dtype=torch.float64) * 3, torch.randn(20, dtype=torch.float64)
    for delta in (0.5, 2.0):
        torch.testing.assert_close(
            losses.build("huber", delta=delta)(pred, target), delta * losses.build("smooth_l1", beta=delta)(pred, target)
        )
    torch.testing.assert_close(losses.build("smooth_l1", beta=0.0)(pred, target), losses.build("mae")(pred, target))


def test_poisson_nll_refuses_negative_counts_and_negative_rates():
    with pytest.raises(ValueError, match="loss 'poisson_nll': target must be counts >= 0"):
        losses.build("poisson_nll")(torch.zeros(3), torch.tensor([1.0, -2.0, 0.0]))
    with pytest.raises(ValueError, match="rates >= 0 with log_input=false .*set log_input=true"):
        losses.build("poisson_nll", log_input=False)(torch.tensor([1.0, -0.5]), torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_poisson_nll_at_a_rate_of_exactly_zero_is_torchs_finite_value(reduction, full, dtype):
    """With log_input=false, log(rate + eps): a zero rate costs -y log(eps), finite, and its gradient 1 - y / eps."""
    rate = torch.tensor([0.0, 0.0, 0.0, 2.0, 0.5], dtype=dtype, requires_grad=True)
    counts = torch.tensor([0.0, 1.0, 4.0, 3.0, 0.0], dtype=dtype)
    ours = losses.build("poisson_nll", log_input=False, full=full, reduction=reduction)(rate, counts)
    theirs_rate = rate.detach().clone().requires_grad_(True)
    theirs = F.poisson_nll_loss(theirs_rate, counts, log_input=False, full=full, reduction=reduction)
    torch.testing.assert_close(ours, theirs)
    assert torch.isfinite(ours).all()
    ours.sum().backward()
    theirs.sum().backward()
    torch.testing.assert_close(rate.grad, theirs_rate.grad)
    if reduction == "none" and not full:
        assert ours[1].item() == pytest.approx(-math.log(1e-8))  # y = 1 at rate 0: -log(eps)
        assert ours[0].item() == 0.0 and rate.grad[2].item() == pytest.approx(1 - 4 / 1e-8)


def test_poisson_nll_takes_integer_counts():
    log_rate = torch.randn(6)
    counts = torch.tensor([0, 1, 2, 5, 0, 3])
    expected = F.poisson_nll_loss(log_rate, counts.float(), full=True)
    torch.testing.assert_close(losses.build("poisson_nll", full=True)(log_rate, counts), expected)


def test_poisson_nll_is_minimised_where_the_rate_equals_the_count():
    counts = torch.tensor([3.0])
    log_rates = torch.linspace(-1, 3, 401).unsqueeze(1)
    values = torch.stack([losses.build("poisson_nll")(z, counts) for z in log_rates])
    assert log_rates[values.argmin()].item() == pytest.approx(math.log(3.0), abs=0.01)


@pytest.mark.parametrize("name", ["mse", "log_cosh", "quantile", "gaussian_nll"])
def test_computes_in_float32_under_bf16_autocast(name):
    pred, target = torch.randn(8).bfloat16(), torch.randn(8)
    loss = losses.build(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(pred, target, torch.ones(8).bfloat16()) if name == "gaussian_nll" else loss(pred, target)
    assert value.dtype == torch.float32


@pytest.mark.parametrize(
    "name,hparams,message",
    [
        ("huber", {"delta": 0}, "loss 'huber': delta must be > 0 (got 0)"),
        ("smooth_l1", {"beta": -1}, "loss 'smooth_l1': beta must be >= 0 (got -1)"),
        ("quantile", {"tau": 0}, "loss 'quantile': tau must be > 0 (got 0)"),
        ("quantile", {"tau": 1.0}, "loss 'quantile': tau must be < 1 (got 1.0)"),
        ("quantile", {"tau": [0.5, 1.2]}, "loss 'quantile': tau must be < 1 (got 1.2)"),
        ("quantile", {"tau": []}, "loss 'quantile': tau must be a number or a non-empty list of numbers (got [])"),
        ("mape", {"eps": 0}, "loss 'mape': eps must be > 0 (got 0)"),
        ("poisson_nll", {"full": "yes"}, "loss 'poisson_nll': full must be true or false (got 'yes')"),
        ("poisson_nll", {"eps": -1e-8}, "loss 'poisson_nll': eps must be > 0"),
        ("gaussian_nll", {"eps": 0.0}, "loss 'gaussian_nll': eps must be > 0 (got 0.0)"),
        ("mse", {"delta": 1.0}, "its hyperparameters are reduction"),
        ("mae", {"reduction": "batchmean"}, "loss 'mae': reduction must be one of none, mean, sum"),
    ],
)
def test_bad_hyperparameters_are_refused(name, hparams, message):
    with pytest.raises(ConfigError) as err:
        losses.build(name, **hparams)
    assert message in str(err.value)


@pytest.mark.parametrize("override,message", [("loss.delta=-1", "delta must be > 0"), ("loss.tau=[0.1,1.5]", "tau must be < 1")])
def test_bad_values_are_refused_when_the_config_is_checked(make_config, override, message):
    from recipes.run.checks import check_config

    loss = "huber" if "delta" in override else "quantile"
    with pytest.raises(ConfigError, match=message):
        check_config(make_config("task=regression", f"loss={loss}", override))
