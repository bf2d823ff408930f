"""kl_div and js_div: the divergences they claim, the two directions, and the guards on their inputs."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, kl_divergence

import losses
from losses import ConfigError


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    student = torch.randn(8, 6, generator=g, dtype=torch.float64) * 2
    teacher = torch.randn(8, 6, generator=g, dtype=torch.float64) * 2
    return F.log_softmax(student, 1), F.softmax(teacher, 1)


def test_kl_div_defaults_to_batchmean_which_is_the_kl_per_sample(pair):
    log_q, p = pair
    loss = losses.build("kl_div")
    assert loss.reduction == "batchmean"
    expected = kl_divergence(Categorical(probs=p), Categorical(logits=log_q)).mean()
    torch.testing.assert_close(loss(log_q, p), expected)


def test_kl_div_reverse_is_kl_of_the_input_from_the_target(pair):
    log_q, p = pair
    expected = kl_divergence(Categorical(logits=log_q), Categorical(probs=p)).mean()
    torch.testing.assert_close(losses.build("kl_div", direction="reverse")(log_q, p), expected)


def test_log_target_gives_the_same_value_as_probabilities(pair):
    log_q, p = pair
    for direction in ("forward", "reverse"):
        with_probs = losses.build("kl_div", direction=direction)(log_q, p)
        with_logs = losses.build("kl_div", direction=direction, log_target=True)(log_q, p.log())
        torch.testing.assert_close(with_logs, with_probs)


def test_kl_div_is_zero_for_equal_distributions_and_finite_where_the_target_is_zero():
    p = torch.tensor([[0.5, 0.5, 0.0]])
    loss = losses.build("kl_div")
    assert loss(p.clamp_min(1e-30).log(), p).item() == pytest.approx(0.0, abs=1e-6)
    value = loss(torch.tensor([[0.2, 0.3, 0.5]]).log(), p)
    assert math.isfinite(value.item()) and value.item() > 0


def discretised_gaussian(mean: torch.Tensor, log_std: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(-0.5 * ((bins - mean) / log_std.exp()) ** 2, 0)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_forward_kl_covers_both_modes_and_reverse_kl_picks_one(direction):
    """Fit a one-bump distribution q to a two-bump p: forward KL spreads q over both, reverse sits on one."""
    bins = torch.arange(-20, 40, dtype=torch.float64)
    p = F.softmax(torch.logsumexp(torch.stack([-0.5 * (bins - 4) ** 2, -0.5 * (bins - 15) ** 2]), 0), 0)
    mean = torch.tensor(7.0, dtype=torch.float64, requires_grad=True)
    log_std = torch.tensor(math.log(2.0), dtype=torch.float64, requires_grad=True)
    loss = losses.build("kl_div", direction=direction, reduction="sum")
    optimizer = torch.optim.Adam([mean, log_std], lr=0.05)
    for _ in range(800):
        optimizer.zero_grad()
        value = loss(discretised_gaussian(mean, log_std, bins)[None], p[None])
        value.backward()
        optimizer.step()
    if direction == "forward":  # mean-seeking: matches p's mean and variance (1 + 5.5^2), covering both modes
        assert mean.item() == pytest.approx(9.5, abs=0.05) and log_std.exp().item() == pytest.approx(31.25**0.5, abs=0.05)
    else:  # mode-seeking: exactly one of the two modes, which holds half of p's mass
        assert mean.item() == pytest.approx(4.0, abs=0.05) and log_std.exp().item() == pytest.approx(1.0, abs=0.05)
        assert value.item() == pytest.approx(math.log(2), abs=1e-4)


def test_js_div_is_symmetric_and_bounded_by_log_two(pair):
    log_q, p = pair
    loss = losses.build("js_div", reduction="none")
    forward = loss(log_q, p).sum(1)
    swapped = loss(p.log(), log_q.exp()).sum(1)
    torch.testing.assert_close(forward, swapped)
    disjoint = loss(torch.tensor([[0.0, -1e4]], dtype=torch.float64), torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    assert disjoint.sum().item() == pytest.approx(math.log(2))
    assert (forward <= math.log(2)).all() and (forward >= 0).all()


@pytest.mark.parametrize("name", ["kl_div", "js_div"])
def test_positive_input_cannot_be_log_probabilities_and_is_an_error(name, pair):
    _, p = pair
    with pytest.raises(ValueError, match=rf"loss '{name}': input must be log-probabilities .*got values up to"):
        losses.build(name)(p, p)  # probabilities (or logits) where log-probabilities belong


@pytest.mark.parametrize("name", ["kl_div", "js_div"])
def test_reduction_mean_warns_that_it_is_not_the_divergence(name):
    with pytest.warns(UserWarning, match="reduction='mean'.*divided by the number of classes.*batchmean"):
        losses.build(name, reduction="mean")


def test_batchmean_does_not_warn(pair):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        losses.build("kl_div")(*pair)


def test_unnormalised_input_warns_to_use_log_softmax(pair):
    _, p = pair
    raw_negative_logits = -torch.rand(8, 6, dtype=torch.float64) - 1
    with pytest.warns(UserWarning, match=r"input is not normalised over dim 1.*log_softmax"):
        losses.build("kl_div")(raw_negative_logits, p)


def test_log_probabilities_as_target_without_log_target_is_an_error_with_the_fix(pair):
    log_q, p = pair
    with pytest.raises(ValueError, match=r"target must be probabilities in \[0, 1\].*pass log_target=true"):
        losses.build("kl_div")(log_q, p.log())


def test_probabilities_as_target_with_log_target_is_an_error(pair):
    log_q, p = pair
    with pytest.raises(ValueError, match="loss 'kl_div': target must be log-probabilities"):
        losses.build("kl_div", log_target=True)(log_q, p)


def test_shape_mismatch_is_an_error(pair):
    log_q, p = pair
    with pytest.raises(ValueError, match=r"target must be the input's shape \(8, 6\)"):
        losses.build("js_div")(log_q, p[:, :5])


@pytest.mark.parametrize(
    "name,hparams,message",
    [
        ("kl_div", {"direction": "backward"}, "direction must be one of forward, reverse (got 'backward')"),
        ("kl_div", {"reduction": "avg"}, "reduction must be one of none, mean, sum, batchmean"),
        ("js_div", {"log_target": "yes"}, "log_target must be true or false (got 'yes')"),
        ("js_div", {"direction": "reverse"}, "its hyperparameters are log_target, reduction"),
    ],
)
def test_bad_hyperparameters_are_config_errors(name, hparams, message):
    with pytest.raises(ConfigError) as err:
        losses.build(name, **hparams)
    assert message in str(err.value)
