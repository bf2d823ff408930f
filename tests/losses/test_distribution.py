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
    assert value.item() == pytest.approx(0.5 * math.log(0.5 / 0.2) + 0.5 * math.log(0.5 / 0.3))  # the p = 0 class adds 0


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean"])
def test_kl_div_one_pass_gradient_equals_the_masked_forms(reduction):
    """The CPU path (torch's value, the gradient -p / n in one pass) against the masked form it replaced: the same
    value and gradient with exact zeros of p, of q (log q = -inf) and of both, and NaN for a NaN input."""
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    log_q = torch.tensor([[0.3, 0.3, 0.4, 0.0], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64).log()
    for bad in (None, (0, 1)):
        x = log_q.clone()
        if bad is not None:
            x[bad] = math.nan
        ours_in, masked_in = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours = losses.build("kl_div", reduction=reduction)(ours_in, p)
        masked = F.kl_div(masked_in.masked_fill(p == 0, 0.0), p, reduction=reduction)
        ours.backward()
        masked.backward()
        torch.testing.assert_close(ours, masked, equal_nan=True)
        torch.testing.assert_close(ours_in.grad, masked_in.grad)
        assert math.isnan(ours.item()) == (bad is not None)


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


# Exact zeros, as a confident student produces them: exp underflows to 0 below about -104 in float32 and
# -745 in float64, so log_softmax keeps a finite log-probability (-120, -800) whose probability is exactly 0;
# "-inf" is the log of an exact zero. The zeros of the target sit where the student's are (so both KL directions
# are finite) and elsewhere (finite for forward KL and JS only).
STUDENT_LOGITS = [[0.0, -1.0, 0.0], [2.0, 0.0, -1.0]]  # the -1.0 entries become the underflowing ones
ZERO_AT = [(0, 1), (1, 2)]
TARGETS = {"same_zeros": [[0.5, 0.0, 0.5], [0.25, 0.75, 0.0]], "other_zeros": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]}
DIVERGENCES = [  # name, hyperparameters, the target zeros at which the value is finite
    ("kl_div", {"direction": "forward"}, ("same_zeros", "other_zeros")),
    ("kl_div", {"direction": "reverse"}, ("same_zeros",)),
    ("js_div", {}, ("same_zeros", "other_zeros")),
]
DIVERGENCE_IDS = ["kl_forward", "kl_reverse", "js"]
UNDERFLOW = {torch.float32: -120.0, torch.float64: -800.0}


def student_with_zeros(dtype: torch.dtype, as_inf: bool) -> torch.Tensor:
    logits = torch.tensor(STUDENT_LOGITS, dtype=dtype)
    for i, c in ZERO_AT:
        logits[i, c] = UNDERFLOW[dtype]
    log_q = F.log_softmax(logits, 1)
    assert (log_q.exp() == 0).sum() == len(ZERO_AT)  # exact zeros, not merely small
    return log_q.masked_fill(log_q.exp() == 0, -math.inf) if as_inf else log_q


def plogp_ratio(a: float, b: float) -> float:
    """a log(a / b) with 0 log 0 = 0."""
    return 0.0 if a == 0 else a * math.log(a / b)


def by_hand(name: str, direction: str, q: list[float], p: list[float]) -> tuple[float, list[float], list[float]]:
    """One sample's divergence, its gradient in each log q_c, and its gradient in each log p_c.

    d/dlog q of q log(q/p) is q (log(q/p) + 1), of -p log q it is -p; for JS, dJS/dq = log(q/m) / 2,
    so dJS/dlog q = q log(q/m) / 2. Each is 0 where its probability is 0 (the limit), the convention used."""
    if name == "js_div":
        m = [(pc + qc) / 2 for pc, qc in zip(p, q)]
        value = 0.5 * sum(plogp_ratio(pc, mc) + plogp_ratio(qc, mc) for pc, qc, mc in zip(p, q, m))
        return value, [plogp_ratio(qc, mc) / 2 for qc, mc in zip(q, m)], [plogp_ratio(pc, mc) / 2 for pc, mc in zip(p, m)]
    if direction == "reverse":
        q, p = p, q
    value = sum(plogp_ratio(pc, qc) for pc, qc in zip(p, q))
    by_p = [0.0 if pc == 0 else plogp_ratio(pc, qc) + pc for pc, qc in zip(p, q)]
    by_q = [-pc for pc in p]
    return (value, by_p, by_q) if direction == "reverse" else (value, by_q, by_p)


@pytest.mark.parametrize("target_grad", [True, False], ids=["target_grad", "target_fixed"])
@pytest.mark.parametrize("as_inf", [False, True], ids=["underflow", "minus_inf"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,hparams,finite_for", DIVERGENCES, ids=DIVERGENCE_IDS)
def test_exact_zeros_give_the_hand_values_and_finite_gradients(name, hparams, finite_for, dtype, as_inf, target_grad):
    """0 log 0 = 0 with gradient 0 there; before, 0 * (-inf) made NaN values (reverse KL) or NaN gradients (JS).
    A fixed target (a teacher's) takes js_div's one-pass path, a target with a gradient the autograd one."""
    for which in finite_for:
        log_q = student_with_zeros(dtype, as_inf).requires_grad_(True)
        p = torch.tensor(TARGETS[which], dtype=dtype)
        log_p = p.log().masked_fill(p == 0, UNDERFLOW[dtype] if not as_inf else -math.inf).requires_grad_(target_grad)
        value = losses.build(name, log_target=True, reduction="none", **hparams)(log_q, log_p)
        value.sum().backward()
        rows = [by_hand(name, hparams.get("direction"), q, t) for q, t in zip(log_q.exp().tolist(), p.tolist())]
        expected = torch.tensor([r[0] for r in rows], dtype=torch.float64)
        torch.testing.assert_close(value.sum(1).double(), expected, msg=which)
        torch.testing.assert_close(log_q.grad.double(), torch.tensor([r[1] for r in rows], dtype=torch.float64))
        if target_grad:
            torch.testing.assert_close(log_p.grad.double(), torch.tensor([r[2] for r in rows], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,hparams,finite_for", DIVERGENCES, ids=DIVERGENCE_IDS)
def test_probability_targets_with_zeros_give_the_same_values_and_finite_gradients(name, hparams, finite_for, dtype):
    """In p the derivative of p log p is -inf at 0; the terms weighted by a zero p pass no gradient, the rest do."""
    for which in finite_for:
        log_q = student_with_zeros(dtype, as_inf=False)
        p = torch.tensor(TARGETS[which], dtype=dtype, requires_grad=True)
        value = losses.build(name, reduction="sum", **hparams)(log_q, p)
        expected = losses.build(name, log_target=True, reduction="sum", **hparams)(log_q, p.detach().log())
        torch.testing.assert_close(value, expected, msg=which)
        value.backward()
        assert torch.isfinite(p.grad).all(), (which, p.grad)


def test_js_div_gradient_is_zero_for_a_confident_student_against_a_uniform_target():
    """q = softmax([0, -120]) = [1, 0] in float32: dJS/dlog q = [log(1/0.75) / 2, 0], which log_softmax cancels."""
    logits = torch.tensor([[0.0, -120.0]], requires_grad=True)
    value = losses.build("js_div")(F.log_softmax(logits, 1), torch.tensor([[0.5, 0.5]]))
    value.backward()
    assert value.item() == pytest.approx(0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2) + math.log(1 / 0.75)))
    torch.testing.assert_close(logits.grad, torch.zeros(1, 2))


def test_reverse_kl_is_infinite_not_nan_where_only_the_target_is_zero():
    log_q = torch.tensor([[0.5, 0.5]]).log()
    assert losses.build("kl_div", direction="reverse")(log_q, torch.tensor([[1.0, 0.0]])).item() == math.inf


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_div_away_from_zeros_is_torch_kl_div_to_the_bit(dtype, direction, log_target):
    """The masks change nothing where every probability is positive: the arithmetic is torch's."""
    g = torch.Generator().manual_seed(5)
    log_q = F.log_softmax(torch.randn(64, 7, generator=g, dtype=torch.float64).to(dtype) * 4, 1)
    log_p = F.log_softmax(torch.randn(64, 7, generator=g, dtype=torch.float64).to(dtype) * 4, 1)
    target = log_p if log_target else log_p.exp()
    ours = losses.build("kl_div", direction=direction, log_target=log_target, reduction="none")(log_q, target)
    if direction == "forward":
        theirs = F.kl_div(log_q, target, reduction="none", log_target=log_target)
    else:
        theirs = F.kl_div(target if log_target else target.log(), log_q, reduction="none", log_target=True)
    assert torch.equal(ours, theirs)


@pytest.mark.filterwarnings("ignore:.*reduction='mean'")
@pytest.mark.parametrize("target_grad", [True, False], ids=["target_grad", "target_fixed"])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("name,hparams", [(name, hparams) for name, hparams, _ in DIVERGENCES], ids=DIVERGENCE_IDS)
def test_gradcheck_next_to_the_zeros(name, hparams, log_target, target_grad):
    """Probabilities of e^-40 are away from the masked zeros: there the derivative is the formula's, for a target with
    a gradient (autograd) and for a fixed one (kl_div's and js_div's one-pass gradients)."""
    log_q = F.log_softmax(torch.tensor([[0.0, -40.0, 1.0], [3.0, 0.0, -38.0]], dtype=torch.float64), 1)
    teacher = F.log_softmax(torch.tensor([[-39.0, 0.0, 0.5], [1.0, -41.0, 0.0]], dtype=torch.float64), 1)
    target = teacher if log_target else F.softmax(torch.tensor([[0.2, 1.0, 0.5], [1.0, -1.0, 0.0]]).double(), 1)
    for reduction in ("sum",) if target_grad else ("sum", "none", "batchmean", "mean"):
        loss = losses.build(name, log_target=log_target, reduction=reduction, **hparams)
        if target_grad:
            assert torch.autograd.gradcheck(loss, (log_q.requires_grad_(True), target.requires_grad_(True)))
        else:
            assert torch.autograd.gradcheck(lambda x, loss=loss: loss(x, target), (log_q.requires_grad_(True),))


@pytest.mark.filterwarnings("ignore:.*reduction='mean'")
@pytest.mark.parametrize("reduction", ["none", "sum", "batchmean", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_js_div_one_pass_path_equals_the_autograd_path_at_extreme_logits(dtype, log_target, reduction):
    """A fixed target takes ``JensenShannon`` (finite logs, the gradient kept from the forward); a target with a
    gradient the masked xlogy terms. Logits of +-50 put probabilities down to e^-100 (float32: subnormal or 0)."""
    g = torch.Generator().manual_seed(3)
    log_q = F.log_softmax((torch.rand(64, 9, generator=g, dtype=torch.float64) * 100 - 50).to(dtype), 1)
    log_p = F.log_softmax((torch.rand(64, 9, generator=g, dtype=torch.float64) * 100 - 50).to(dtype), 1)
    target = log_p if log_target else log_p.exp()
    loss = losses.build("js_div", log_target=log_target, reduction=reduction)
    fast_in, autograd_in = log_q.clone().requires_grad_(), log_q.clone().requires_grad_()
    fast, masked = loss(fast_in, target), loss(autograd_in, target.clone().requires_grad_())
    fast.sum().backward()
    masked.sum().backward()
    torch.testing.assert_close(fast, masked.detach())
    torch.testing.assert_close(fast_in.grad, autograd_in.grad)
    assert torch.isfinite(fast_in.grad).all()
