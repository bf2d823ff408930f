"""Reference cases for the classification losses (torch, torchvision, and formulas by hand)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision

from tests.losses.conformance import Case, randn, reduce_reference

N, C = 12, 5


def logits_and_indices(g, dtype):
    return randn(g, dtype, N, C, scale=2.0), torch.randint(0, C, (N,), generator=g)


def logits_and_multi_hot(g, dtype):
    return randn(g, dtype, N, C, scale=2.0), (torch.rand(N, C, generator=g) > 0.6).to(dtype)


def torch_ce(logits, target, reduction, weight=None, label_smoothing=0.0, ignore_index=-100):
    w = None if weight is None else torch.tensor(weight, dtype=logits.dtype)
    return F.cross_entropy(logits, target, weight=w, label_smoothing=label_smoothing, reduction=reduction)


def hand_softmax_focal(logits, target, reduction, gamma, alpha):
    p_t = logits.softmax(1)[torch.arange(len(target)), target]
    values = -alpha * (1 - p_t) ** gamma * torch.log(p_t)
    return {"none": values, "mean": values.mean(), "sum": values.sum()}[reduction]


def torchvision_focal(logits, target, reduction, gamma, alpha):
    return torchvision.ops.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction=reduction)


def torch_bce(logits, target, reduction, weight=None, pos_weight=None):
    def t(v):
        return None if v is None else torch.tensor(v, dtype=logits.dtype)

    return F.binary_cross_entropy_with_logits(logits, target, weight=t(weight), pos_weight=t(pos_weight), reduction=reduction)


COUNTS = [40, 200, 5, 1000, 12]


def effective_number_weights(counts, beta, dtype):
    """Cui et al. 2019, eq. in Sec. 3: weight 1 / E_n with E_n = (1 - beta^n) / (1 - beta), rescaled to sum to C."""
    n = torch.tensor(counts, dtype=dtype)
    w = (1 - beta) / (1 - beta**n)
    return w / w.sum() * len(counts)


def hand_class_balanced(logits, target, reduction, beta, samples_per_class, base="ce", gamma=2.0):
    w = effective_number_weights(samples_per_class, beta, logits.dtype)
    p_t = logits.softmax(1)[torch.arange(len(target)), target]
    values = -w[target] * torch.log(p_t) * ((1 - p_t) ** gamma if base == "focal" else 1.0)
    return reduce_reference(values, reduction)


def scores_and_signs(g, dtype):
    return randn(g, dtype, N, scale=2.0), torch.randint(0, 2, (N,), generator=g).to(dtype) * 2 - 1


def logits_and_zero_one(g, dtype):
    return randn(g, dtype, N, C, scale=2.0), torch.randint(0, 2, (N, C), generator=g)


def hand_binary_hinge(scores, target, reduction, margin=1.0, p=1):
    y = target.to(scores.dtype)
    y = y if bool((y == -1).any()) else 2 * y - 1
    return reduce_reference(torch.clamp(margin - y * scores, min=0) ** p, reduction)


def hand_multi_margin(logits, target, reduction, margin=1.0, p=1):
    """torch.nn.MultiMarginLoss written out: sum over i != y of max(0, margin - x_y + x_i)^p, over C."""
    x_y = logits.gather(1, target[:, None])
    terms = torch.clamp(margin - x_y + logits, min=0) ** p
    terms = terms.masked_fill(F.one_hot(target, logits.shape[1]).bool(), 0.0)
    return reduce_reference(terms.sum(1) / logits.shape[1], reduction)


CASES = {
    "ce": [
        Case(logits_and_indices, torch_ce, label="indices"),
        Case(
            logits_and_indices,
            torch_ce,
            hparams={"weight": [1.0, 2.0, 0.5, 1.0, 3.0], "label_smoothing": 0.1},
            label="weighted-smoothed",
            reductions=("none", "sum"),  # torch's weighted mean divides by the weights: checked separately
        ),
    ],
    "label_smoothing": [Case(logits_and_indices, lambda x, t, reduction: torch_ce(x, t, reduction, label_smoothing=0.1))],
    "focal": [
        Case(logits_and_indices, hand_softmax_focal, hparams={"gamma": 2.0, "alpha": 0.25}, label="softmax"),
        Case(logits_and_multi_hot, torchvision_focal, hparams={"gamma": 2.0, "alpha": 0.25}, label="sigmoid"),
        Case(logits_and_multi_hot, torchvision_focal, hparams={"gamma": 0.5, "alpha": -1}, label="sigmoid-gamma-half"),
    ],
    "bce_logits": [
        Case(logits_and_multi_hot, torch_bce, hparams={"pos_weight": [3.0, 1.0, 1.0, 0.5, 2.0]}, label="pos_weight"),
        Case(logits_and_multi_hot, torch_bce, hparams={"weight": [1.0, 0.5, 2.0, 1.0, 1.0]}, label="weight"),
    ],
    "class_balanced": [
        Case(
            logits_and_indices,
            hand_class_balanced,
            hparams={"beta": 0.99, "samples_per_class": COUNTS},
            label="ce",
        ),
        Case(
            logits_and_indices,
            hand_class_balanced,
            hparams={"beta": 0.999, "samples_per_class": COUNTS, "base": "focal", "gamma": 1.5},
            label="focal",
        ),
    ],
    "hinge": [
        Case(scores_and_signs, hand_binary_hinge, label="binary-signs"),
        Case(logits_and_zero_one, hand_binary_hinge, hparams={"margin": 0.5, "p": 2}, label="binary-zero-one"),
        Case(logits_and_indices, hand_multi_margin, label="multiclass"),
        Case(logits_and_indices, hand_multi_margin, hparams={"margin": 2.0, "p": 2}, label="multiclass-squared"),
    ],
}
