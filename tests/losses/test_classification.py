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


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [3, 255])  # a class of the batch; outside the classes, as in segmentation
def test_ce_leaves_out_targets_equal_to_a_non_default_ignore_index(batch, reduction, smoothing, ignore_index):
    """Some but not all targets ignored: they count neither in the sum nor in the weighted mean's denominator."""
    logits, target = batch
    target = target.where(target != 3, 0)
    target[::3] = ignore_index  # 6 of 16
    weight = [1.0, 2.0, 0.5, 1.0, 3.0]
    loss = losses.build("ce", weight=weight, ignore_index=ignore_index, label_smoothing=smoothing, reduction=reduction)
    w = torch.tensor(weight, dtype=torch.float64)
    ref = F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index, label_smoothing=smoothing, reduction=reduction)
    torch.testing.assert_close(loss(logits, target), ref, rtol=1e-12, atol=1e-12)
    kept = target != ignore_index
    every = F.cross_entropy(logits[kept], target[kept], weight=w, label_smoothing=smoothing, reduction=reduction)
    if reduction == "none":
        assert torch.equal(loss(logits, target)[~kept], torch.zeros(6, dtype=torch.float64))
        torch.testing.assert_close(loss(logits, target)[kept], every)
    else:  # the same as dropping the ignored rows first
        torch.testing.assert_close(loss(logits, target), every)


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


# ----- class_balanced -----------------------------------------------------------------------------


def test_class_balanced_weights_by_hand_sum_to_the_number_of_classes():
    from losses.classification import class_balanced_weights

    # counts 1 and 9, beta 0.9: raw weights 0.1 / (1 - 0.9) = 1 and 0.1 / (1 - 0.9^9), then scaled to sum to 2
    raw = torch.tensor([1.0, 0.1 / (1 - 0.9**9)], dtype=torch.float64)
    weights = class_balanced_weights(torch.tensor([1, 9]), beta=0.9)
    torch.testing.assert_close(weights, raw * 2 / raw.sum())
    assert weights[0] > weights[1]  # the rare class weighs more


def test_class_balanced_tends_to_inverse_frequency_as_beta_tends_to_one():
    from losses.classification import class_balanced_weights

    counts = torch.tensor([10.0, 100.0, 1000.0])
    inverse = (1 / counts) / (1 / counts).sum() * 3
    torch.testing.assert_close(class_balanced_weights(counts, 1 - 1e-9).float(), inverse.float(), rtol=1e-5, atol=0)


@pytest.mark.parametrize("base", ["ce", "focal"])
def test_class_balanced_with_beta_zero_is_the_unweighted_base_loss(batch, base):
    logits, target = batch
    ours = losses.build("class_balanced", beta=0.0, samples_per_class=[1, 5, 50, 500, 5000], base=base, gamma=2.0)
    plain = losses.build("ce") if base == "ce" else losses.build("focal", gamma=2.0, alpha=None)
    torch.testing.assert_close(ours(logits, target), plain(logits, target))


def test_class_balanced_mean_averages_weighted_losses_over_samples_not_weights(batch):
    logits, target = batch
    counts = [3, 30, 300, 3000, 30]
    loss = losses.build("class_balanced", beta=0.999, samples_per_class=counts)
    weights = loss.class_weight.double()
    per_sample = F.cross_entropy(logits, target, reduction="none") * weights[target]
    torch.testing.assert_close(loss(logits, target), per_sample.mean())
    # torch's weighted mean divides by the sum of the weights instead, a different value
    torch_weighted = F.cross_entropy(logits, target, weight=weights)
    assert not torch.allclose(loss(logits, target), torch_weighted)


def test_class_balanced_without_counts_refuses_to_run_until_they_are_set(batch):
    logits, target = batch
    loss = losses.build("class_balanced")
    assert loss.counts_from_data
    with pytest.raises(RuntimeError, match="no class counts yet.*set_class_counts"):
        loss(logits, target)
    loss.set_class_counts(torch.tensor([5, 10, 20, 40, 80]))
    assert loss.samples_per_class == [5, 10, 20, 40, 80]
    assert torch.isfinite(loss(logits, target))


def test_class_balanced_counts_with_an_empty_class_are_refused():
    loss = losses.build("class_balanced")
    with pytest.raises(ValueError, match=r"classes \[2\] have no training samples"):
        loss.set_class_counts([4, 5, 0, 7])


def test_class_balanced_counts_must_match_the_number_of_classes(batch):
    logits, target = batch
    loss = losses.build("class_balanced", samples_per_class=[1, 2, 3])
    with pytest.raises(ValueError, match="logits must be 3 classes to match samples_per_class"):
        loss(logits, target)


def test_class_balanced_refuses_probability_targets(batch):
    logits, _ = batch
    with pytest.raises(ValueError, match="target must be integer class indices"):
        losses.build("class_balanced", samples_per_class=[1, 2, 3, 4, 5])(logits, logits.softmax(1))


# ----- hinge ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin,p", [(1.0, 1), (0.5, 2), (0.0, 1)])
def test_multiclass_hinge_equals_torch_multi_margin_loss(batch, reduction, margin, p):
    logits, target = batch
    ours = losses.build("hinge", margin=margin, p=p, reduction=reduction)(logits, target)
    ref = torch.nn.MultiMarginLoss(p=p, margin=margin, reduction=reduction)(logits, target)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_binary_hinge_gives_the_same_value_for_zero_one_and_sign_labels():
    scores = torch.tensor([2.0, 0.5, -0.3, -2.0], dtype=torch.float64)
    zero_one = torch.tensor([1, 1, 0, 1])
    signs = torch.tensor([1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    hinge = losses.build("hinge", reduction="none")
    by_hand = torch.tensor([0.0, 0.5, 0.7, 3.0], dtype=torch.float64)  # max(0, 1 - y s)
    torch.testing.assert_close(hinge(scores, zero_one), by_hand)
    torch.testing.assert_close(hinge(scores, signs), by_hand)


def test_binary_hinge_accepts_bool_labels():
    scores = torch.tensor([2.0, -0.5])
    value = losses.build("hinge", reduction="none")(scores, torch.tensor([False, True]))
    torch.testing.assert_close(value, torch.tensor([3.0, 1.5]))


def test_binary_hinge_accepts_a_single_logit_column():
    scores = torch.tensor([[2.0], [-0.5]])
    value = losses.build("hinge", reduction="none")(scores, torch.tensor([0, 1]))
    torch.testing.assert_close(value, torch.tensor([3.0, 1.5]))


@pytest.mark.parametrize(
    "target,message",
    [
        (torch.tensor([-1, 0, 1, 1]), "not a mix"),
        (torch.tensor([0, 2, 1, 1]), r"binary labels in \{-1, \+1\} or \{0, 1\}"),
        (torch.tensor([0.5, 1.0, 0.0, 1.0]), r"binary labels in \{-1, \+1\} or \{0, 1\}"),
    ],
)
def test_binary_hinge_refuses_labels_that_are_not_binary(target, message):
    with pytest.raises(ValueError, match=message):
        losses.build("hinge")(torch.randn(4), target)


def test_hinge_class_index_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match=r"loss 'hinge': target must be class indices in \[0, 2\]"):
        losses.build("hinge")(torch.randn(4, 3), torch.tensor([0, 1, 2, 5]))


# ----- guards shared by the classification losses ------------------------------------------------


@pytest.mark.parametrize("name", ["ce", "focal", "class_balanced", "hinge", "bce_logits"])
def test_class_index_out_of_range_is_a_clear_error_for_every_loss(name):
    loss = losses.build(name, samples_per_class=[1, 2, 3]) if name == "class_balanced" else losses.build(name)
    with pytest.raises(ValueError, match=rf"loss '{name}': target must be class indices in \[0, 2\]"):
        loss(torch.randn(4, 3), torch.tensor([0, 1, -1, 2]))


@pytest.mark.parametrize("name", ["ce", "focal", "class_balanced"])
def test_a_single_logit_column_with_class_indices_is_refused(name):
    loss = losses.build(name, samples_per_class=[1, 2]) if name == "class_balanced" else losses.build(name)
    with pytest.raises(ValueError, match="at least 2 classes.*use bce_logits"):
        loss(torch.randn(4, 1), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"scores of shape \[N, C\]"):
        loss(torch.randn(4), torch.zeros(4, dtype=torch.long))


def test_one_hot_integer_targets_where_indices_are_expected_get_a_hint():
    target = F.one_hot(torch.tensor([0, 2, 1, 1]), 3)
    with pytest.raises(ValueError, match=r"it looks one-hot: pass target.argmax\(1\)"):
        losses.build("ce")(torch.randn(4, 3), target)


@pytest.mark.parametrize("name", ["ce", "focal", "hinge"])
def test_int32_class_indices_give_the_int64_value(batch, name):
    logits, target = batch
    loss = losses.build(name)
    torch.testing.assert_close(loss(logits, target.int()), loss(logits, target))


def test_bool_targets_are_not_class_indices():
    with pytest.raises(ValueError, match="target must be integer class indices"):
        losses.build("ce")(torch.randn(4, 2), torch.tensor([True, False, True, True]))


@pytest.mark.parametrize("name", ["bce_logits", "focal"])
def test_minus_one_labels_for_a_sigmoid_loss_are_refused(name):
    target = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    with pytest.raises(ValueError, match=r"in \[0, 1\].*\(target \+ 1\) / 2.*values from -1 to 1"):
        losses.build(name)(torch.randn(2, 2), target)


def test_ce_probability_targets_that_do_not_sum_to_one_warn():
    multi_hot = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    with pytest.warns(UserWarning, match="should sum to 1.*use bce_logits"):
        losses.build("ce")(torch.randn(2, 3), multi_hot)


def test_ce_probability_targets_that_sum_to_one_do_not_warn(recwarn):
    losses.build("ce")(torch.randn(2, 3), torch.tensor([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]]))
    assert not [w for w in recwarn if "sum to 1" in str(w.message)]


def test_sigmoid_outputs_passed_as_logits_warn():
    probs = torch.randn(16, 4).sigmoid()
    target = (torch.rand(16, 4) > 0.5).float()
    with pytest.warns(UserWarning, match="not sigmoid outputs"):
        losses.build("bce_logits")(probs, target)


def test_raw_logits_do_not_trigger_the_probability_warning(recwarn):
    logits = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    losses.build("bce_logits")(logits, (logits > 0).float())
    losses.build("ce")(logits, torch.zeros(16, dtype=torch.long))
    assert not [w for w in recwarn if "probabilities" in str(w.message)]


def test_pos_weight_per_sample_on_binary_logits_is_refused():
    # torch would broadcast a length-N pos_weight elementwise over [N] logits, silently per sample
    loss = losses.build("bce_logits", pos_weight=[1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="one value per class, not per sample"):
        loss(torch.randn(4), torch.tensor([1.0, 0.0, 1.0, 0.0]))


def test_bce_per_class_pos_weight_applies_along_the_class_dim_of_dense_logits():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    target = (torch.rand(2, 3, 4, 5, generator=g) > 0.5).double()
    pos_weight = [1.0, 5.0, 0.2]
    ours = losses.build("bce_logits", pos_weight=pos_weight)(logits, target)
    ref = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor(pos_weight, dtype=torch.float64).view(3, 1, 1)
    )
    torch.testing.assert_close(ours, ref)


def test_bce_dense_class_indices_become_one_hot_along_the_class_dim():
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 4, 4))
    ref = F.binary_cross_entropy_with_logits(logits, F.one_hot(target, 3).permute(0, 3, 1, 2).double())
    torch.testing.assert_close(losses.build("bce_logits")(logits, target), ref)


@pytest.mark.parametrize(
    "name,hparams,message",
    [
        ("class_balanced", {"beta": 1.0}, "loss 'class_balanced': beta must be < 1 (got 1.0)"),
        ("class_balanced", {"beta": -0.1}, "loss 'class_balanced': beta must be >= 0 (got -0.1)"),
        ("class_balanced", {"base": "bce"}, "loss 'class_balanced': base must be one of ce, focal (got 'bce')"),
        ("class_balanced", {"gamma": -1}, "loss 'class_balanced': gamma must be >= 0 (got -1)"),
        ("class_balanced", {"samples_per_class": [10, 0, 5]}, "every samples_per_class must be > 0"),
        ("class_balanced", {"samples_per_class": [10]}, "samples_per_class must give at least 2 classes"),
        ("class_balanced", {"samples_per_class": 100}, "samples_per_class must be a list of counts"),
        ("hinge", {"p": 3}, "loss 'hinge': p must be 1 or 2 (as torch's MultiMarginLoss) (got 3)"),
        ("hinge", {"margin": -1.0}, "loss 'hinge': margin must be >= 0 (got -1.0)"),
    ],
)
def test_bad_zoo_hyperparameters_are_refused(name, hparams, message):
    with pytest.raises(ConfigError) as err:
        losses.build(name, **hparams)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "name,hparams,logits,target,message",
    [
        ("ce", {}, torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long), "logits must be a floating-point"),
        ("ce", {"weight": [1.0, 2.0]}, torch.randn(4, 3), torch.zeros(4, dtype=torch.long), "2 classes to match weight"),
        ("ce", {}, torch.randn(4, 3), torch.rand(4, 2), r"class indices or probabilities of shape \(4, 3\)"),
        ("ce", {}, torch.randn(4, 3), torch.zeros(5, dtype=torch.long), r"class indices of shape \(4,\)"),
        ("focal", {}, torch.randn(4, 3), torch.rand(4, 2), r"0/1 floats of the logits' shape \(4, 3\)"),
        ("focal", {"alpha": [0.2, 0.3, 0.5]}, torch.randn(4, 3), torch.ones(4, 3), "alpha must be a scalar for sigmoid"),
        ("focal", {"alpha": [0.5, 0.5]}, torch.randn(4, 3), torch.zeros(4, dtype=torch.long), "2 classes to match alpha"),
        ("bce_logits", {}, torch.randn(4, 3), torch.full((4, 3), 2), "0/1 labels of shape"),
        ("bce_logits", {}, torch.randn(4, 3), torch.rand(4, 2), r"probabilities of shape \(4, 3\)"),
        ("bce_logits", {"weight": [1.0, 2.0]}, torch.randn(4, 3), torch.ones(4, 3), "2 classes along dim 1 to match weight"),
        ("hinge", {}, torch.randn(2, 3, 4), torch.zeros(2, dtype=torch.long), "logits must be scores"),
    ],
)
def test_bad_inputs_name_the_loss_the_argument_and_what_is_needed(name, hparams, logits, target, message):
    with pytest.raises(ValueError, match=message) as err:
        losses.build(name, **hparams)(logits, target)
    assert f"loss '{name}'" in str(err.value)


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_class_balanced_focal_gradients_stay_finite_with_extreme_logits(gamma):
    logits = torch.tensor([[60.0, -60.0, 0.0], [-80.0, 80.0, 1.0]], requires_grad=True)
    loss = losses.build("class_balanced", samples_per_class=[10, 100, 1000], base="focal", gamma=gamma)
    value = loss(logits, torch.tensor([0, 1]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("counts", [[5.0], [5.0, float("nan")], [5.0, float("inf")]])
def test_set_class_counts_refuses_fewer_than_two_or_non_finite_counts(counts):
    with pytest.raises(ValueError, match="class counts must be finite, at least 2"):
        losses.build("class_balanced").set_class_counts(counts)


@pytest.mark.parametrize("target", [torch.tensor([1, 0, 0, 1]), torch.tensor([1.0, -1.0, -1.0, 1.0])])
def test_binary_hinge_without_value_checks_maps_labels_the_same_way(target, monkeypatch):
    """On an accelerator the checks stop after the first calls; the label mapping must not depend on them."""
    scores = torch.tensor([0.3, -2.0, 0.4, 1.5])
    checked = losses.build("hinge", reduction="none")(scores, target)
    unchecked_loss = losses.build("hinge", reduction="none")
    monkeypatch.setattr(unchecked_loss, "check_values", lambda tensor: False)
    torch.testing.assert_close(unchecked_loss(scores, target), checked)
    torch.testing.assert_close(checked, torch.tensor([0.7, 0.0, 1.4, 0.0]))
