"""Reference cases for the classification losses (torch, torchvision, and formulas by hand)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision

from tests.losses.conformance import Case, randn

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
}
