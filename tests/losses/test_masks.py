"""Mask losses: the absent-class policy, perfect and empty predictions, Tversky's special cases, bad inputs."""

from __future__ import annotations

import pytest
import torch

import losses
from losses import ConfigError

MASK_LOSSES = ["dice", "jaccard", "tversky"]


def sharp_logits(target: torch.Tensor, classes: int, margin: float = 30.0) -> torch.Tensor:
    """Logits whose softmax is (almost) exactly the one-hot target."""
    return torch.nn.functional.one_hot(target, classes).movedim(-1, 1).double() * margin


def test_every_mask_loss_is_registered_with_kind_masks():
    assert losses.available("masks") == MASK_LOSSES


@pytest.mark.parametrize("name", MASK_LOSSES)
def test_a_perfect_prediction_has_zero_loss(name):
    target = torch.randint(0, 4, (3, 8, 8), generator=torch.Generator().manual_seed(0))
    assert losses.build(name)(sharp_logits(target, 4), target).item() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", MASK_LOSSES)
def test_a_class_absent_from_target_and_prediction_changes_nothing(name):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 6, 6), generator=g)
    loss = losses.build(name, reduction="none")
    never_predicted = torch.full((2, 1, 6, 6), -50.0, dtype=torch.float64)
    with_absent_class = loss(torch.cat([logits, never_predicted], 1), target)
    torch.testing.assert_close(with_absent_class, loss(logits, target), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", MASK_LOSSES)
def test_a_class_predicted_but_absent_from_the_target_is_penalised(name):
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, :3] = 1
    logits = sharp_logits(target, 3)
    loss = losses.build(name)
    clean = loss(logits, target)
    logits[0, 2, 4:, :] = 100.0  # class 2 appears in two rows of the prediction only
    assert loss(logits, target) > clean + 0.2


@pytest.mark.parametrize("smooth", [0.0, 1.0])
@pytest.mark.parametrize("name", MASK_LOSSES)
def test_binary_empty_target_and_empty_prediction_is_zero_with_finite_gradient(name, smooth):
    logits = torch.full((2, 1, 5, 5), -20.0, dtype=torch.float64, requires_grad=True)
    value = losses.build(name, smooth=smooth)(logits, torch.zeros(2, 5, 5, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", MASK_LOSSES)
def test_unsmoothed_losses_stay_finite_when_classes_are_missing(name):
    logits = torch.randn(2, 5, 4, 4, dtype=torch.float32, requires_grad=True)
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    value = losses.build(name, smooth=0.0)(logits, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_tversky_is_dice_at_one_half_and_jaccard_at_one():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 4, 7, 7, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 7, 7), generator=g)
    half = losses.build("tversky", alpha=0.5, beta=0.5, smooth=0.5, reduction="none")(logits, target)
    torch.testing.assert_close(half, losses.build("dice", smooth=1.0, reduction="none")(logits, target))
    one = losses.build("tversky", alpha=1.0, beta=1.0, smooth=0.5, reduction="none")(logits, target)
    torch.testing.assert_close(one, losses.build("jaccard", smooth=0.5, reduction="none")(logits, target))


def test_tversky_beta_above_alpha_punishes_missed_pixels_more():
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, :, :3] = 1
    under = sharp_logits(target, 2)
    under[0, 0, :, 2], under[0, 1, :, 2] = 30.0, 0.0  # one foreground column missed
    recall_heavy = losses.build("tversky", alpha=0.2, beta=0.8)(under, target)
    precision_heavy = losses.build("tversky", alpha=0.8, beta=0.2)(under, target)
    assert recall_heavy > precision_heavy


def test_bad_targets_name_the_loss_and_what_is_needed():
    logits = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"loss 'dice': target must be class indices in \[0, 2\] \(got values from 3 to 3\)"):
        losses.build("dice")(logits, torch.full((2, 4, 4), 3))
    with pytest.raises(ValueError, match="loss 'jaccard': target must be integer class indices"):
        losses.build("jaccard")(logits, torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"loss 'tversky': target must be class indices of shape \(2, 4, 4\)"):
        losses.build("tversky")(logits, torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"class indices in \[0, 1\]"):
        losses.build("dice")(torch.zeros(2, 1, 4, 4), torch.full((2, 4, 4), 2))


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ConfigError, match=r"loss 'dice': smooth must be >= 0 \(got -1\)"):
        losses.build("dice", smooth=-1)
    with pytest.raises(ConfigError, match=r"loss 'tversky': alpha \+ beta must be > 0"):
        losses.build("tversky", alpha=0, beta=0)


@pytest.mark.parametrize("name", MASK_LOSSES)
def test_ignored_pixels_change_nothing_whatever_their_logits(name):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 6, 6), generator=g)
    target[:, :2] = 255  # two void rows
    loss = losses.build(name, ignore_index=255, reduction="none")
    other = logits.clone()
    other[:, :, :2] = torch.randn(2, 3, 2, 6, generator=g, dtype=torch.float64) * 50
    torch.testing.assert_close(loss(other, target), loss(logits, target), rtol=0, atol=0)
    cropped = losses.build(name, reduction="none")(logits[:, :, 2:], target[:, 2:])  # the same pixels, void cut off
    torch.testing.assert_close(loss(logits, target), cropped, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", MASK_LOSSES)
def test_a_class_weight_of_zero_leaves_that_class_out_and_weights_scale_the_mean(name):
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(1, 3, 5, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (1, 5, 5), generator=g)
    per_class = [losses.build(name, weight=[float(c == k) for c in range(3)])(logits, target) for k in range(3)]
    weighted = losses.build(name, weight=[1.0, 2.0, 3.0])(logits, target)
    torch.testing.assert_close(weighted, (per_class[0] + 2 * per_class[1] + 3 * per_class[2]) / 6)


def test_ignore_index_and_weight_are_checked():
    with pytest.raises(ConfigError, match=r"loss 'dice': ignore_index must be an integer or null \(got 2.5\)"):
        losses.build("dice", ignore_index=2.5)
    with pytest.raises(ConfigError, match=r"loss 'jaccard': every weight must be >= 0"):
        losses.build("jaccard", weight=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"loss 'tversky': logits must be 2 channels to match weight \(got 3\)"):
        losses.build("tversky", weight=[1.0, 1.0])(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\] or ignore_index 255 \(got values from 0 to 7\)"):
        losses.build("dice", ignore_index=255)(torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 255], [7, 1]]]))
