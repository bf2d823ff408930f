"""Classification losses against torch / torchvision, gradcheck, autocast and their pitfalls."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

import losses
from losses import ConfigError

REDUCTIONS = ["none", "mean", "sum"]


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, 5, (16,), generator=g)
    return logits, target


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_ce_equals_torch_cross_entropy(batch, reduction, smoothing):
    logits, target = batch
    weight = [1.0, 2.0, 0.5, 1.0, 3.0]
    ours = losses.build("ce", weight=weight, label_smoothing=smoothing, reduction=reduction)(logits, target)
    ref = F.cross_entropy(
        logits, target, weight=torch.tensor(weight, dtype=torch.float64), label_smoothing=smoothing, reduction=reduction
    )
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_label_smoothing_defaults_to_point_one(batch):
    logits, target = batch
    torch.testing.assert_close(
        losses.build("label_smoothing")(logits, target), F.cross_entropy(logits, target, label_smoothing=0.1)
    )


def test_label_smoothing_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    eps, c = 0.2, 3
    q = torch.full((1, 3), eps / c, dtype=torch.float64)
    q[0, 0] += 1 - eps
    by_hand = -(q * logits.log_softmax(1)).sum()
    torch.testing.assert_close(losses.build("ce", label_smoothing=eps)(logits, torch.tensor([0])), by_hand)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma,alpha", [(2.0, 0.25), (0.0, -1), (0.5, None), (5.0, 0.75)])
def test_focal_with_float_targets_equals_torchvision(batch, reduction, gamma, alpha):
    logits, _ = batch
    target = (torch.rand(logits.shape, generator=torch.Generator().manual_seed(1)) > 0.7).double()
    ours = losses.build("focal", gamma=gamma, alpha=alpha, reduction=reduction)(logits, target)
    ref = torchvision.ops.sigmoid_focal_loss(
        logits, target, alpha=-1 if alpha is None else alpha, gamma=gamma, reduction=reduction
    )
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_focal_reduces_to_ce_when_gamma_is_zero(batch):
    logits, target = batch
    ours = losses.build("focal", gamma=0.0, alpha=None)(logits, target)
    torch.testing.assert_close(ours, F.cross_entropy(logits, target))


def test_softmax_focal_by_hand():
    logits = torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64)
    p_t = logits.softmax(1)[0, 1]
    by_hand = -0.25 * (1 - p_t) ** 2 * torch.log(p_t)
    torch.testing.assert_close(losses.build("focal", gamma=2.0, alpha=0.25)(logits, torch.tensor([1])), by_hand)


def test_softmax_focal_per_class_alpha():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], dtype=torch.float64)
    target = torch.tensor([1, 2])
    alpha = [0.1, 0.2, 0.7]
    p_t = logits.softmax(1)[torch.arange(2), target]
    by_hand = (-torch.tensor([0.2, 0.7], dtype=torch.float64) * (1 - p_t) ** 2 * p_t.log()).mean()
    torch.testing.assert_close(losses.build("focal", alpha=alpha)(logits, target), by_hand)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_logits_equals_torch(batch, reduction):
    logits, target = batch
    multi_hot = (torch.rand(logits.shape, generator=torch.Generator().manual_seed(2)) > 0.5).double()
    weight, pos_weight = [1.0, 0.5, 2.0, 1.0, 1.0], [3.0, 1.0, 1.0, 0.5, 2.0]
    ours = losses.build("bce_logits", weight=weight, pos_weight=pos_weight, reduction=reduction)(logits, multi_hot)
    ref = F.binary_cross_entropy_with_logits(
        logits,
        multi_hot,
        weight=torch.tensor(weight, dtype=torch.float64),
        pos_weight=torch.tensor(pos_weight, dtype=torch.float64),
        reduction=reduction,
    )
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_bce_logits_turns_class_indices_into_one_hot(batch):
    logits, target = batch
    ref = F.binary_cross_entropy_with_logits(logits, F.one_hot(target, 5).double())
    torch.testing.assert_close(losses.build("bce_logits")(logits, target), ref)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("targets", ["indices", "floats"])
def test_focal_gradients_stay_finite_with_extreme_logits(gamma, targets):
    logits = torch.tensor([[60.0, -60.0, 0.0], [-80.0, 80.0, 1.0]], requires_grad=True)
    target = torch.tensor([0, 1]) if targets == "indices" else torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    loss = losses.build("focal", gamma=gamma)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_ce_with_every_target_ignored_is_zero_with_a_warning():
    logits = torch.randn(4, 3, requires_grad=True)
    with pytest.warns(UserWarning, match="ignore_index"):
        value = losses.build("ce")(logits, torch.full((4,), -100))
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_class_index_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match=r"loss 'ce': target must be class indices in \[0, 2\]"):
        losses.build("ce")(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))


def test_probabilities_passed_as_logits_warn():
    probs = torch.randn(4, 3).softmax(1)
    with pytest.warns(UserWarning, match="look like probabilities"):
        losses.build("focal")(probs, torch.tensor([0, 1, 2, 0]))


def test_one_hot_float_target_for_softmax_focal_is_refused():
    with pytest.raises(ValueError, match="target"):
        losses.build("focal")(torch.randn(4, 3), torch.ones(4))


@pytest.mark.parametrize(
    "name,hparams,message",
    [
        ("focal", {"gamma": -1}, "loss 'focal': gamma must be >= 0 (got -1)"),
        ("focal", {"alpha": 1.5}, "loss 'focal': alpha must be <= 1 (got 1.5)"),
        ("ce", {"label_smoothing": 1.5}, "loss 'ce': label_smoothing must be < 1 (got 1.5)"),
        ("ce", {"reduction": "avg"}, "loss 'ce': reduction must be one of none, mean, sum (got 'avg')"),
        ("bce_logits", {"pos_weight": [1.0, 0.0]}, "loss 'bce_logits': every pos_weight must be > 0"),
        ("ce", {"gamma": 2}, "its hyperparameters are weight, ignore_index, label_smoothing, reduction"),
    ],
)
def test_bad_hyperparameters_are_refused(name, hparams, message):
    with pytest.raises(ConfigError) as err:
        losses.build(name, **hparams)
    assert message in str(err.value)


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="not registered; available losses: .*bce_logits, .*ce, .*focal"):
        losses.build("nope")
