"""Reference cases for the classification losses: inputs, and the references in ``bench/references/classification.py``."""

from __future__ import annotations

import torch

from bench.references.classification import (
    hand_binary_hinge,
    hand_class_balanced,
    hand_multi_margin,
    hand_softmax_focal,
    torch_bce,
    torch_ce,
    torchvision_focal,
)
from tests.losses.conformance import Case, randn

N, C = 12, 5


def logits_and_indices(g, dtype):
    return randn(g, dtype, N, C, scale=2.0), torch.randint(0, C, (N,), generator=g)


def logits_and_multi_hot(g, dtype):
    return randn(g, dtype, N, C, scale=2.0), (torch.rand(N, C, generator=g) > 0.6).to(dtype)


COUNTS = [40, 200, 5, 1000, 12]


def scores_and_signs(g, dtype):
    return randn(g, dtype, N, scale=2.0), torch.randint(0, 2, (N,), generator=g).to(dtype) * 2 - 1


def logits_and_zero_one(g, dtype):
    return randn(g, dtype, N, C, scale=2.0), torch.randint(0, 2, (N, C), generator=g)


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
