"""Reference cases for the mask losses: inputs, and the hand references in ``bench/references/masks.py``."""

from __future__ import annotations

import torch

from bench.references.masks import hand_dice, hand_jaccard, hand_tversky
from tests.losses.conformance import Case, randn

N, C, H, W = 4, 4, 6, 5


def softmax_inputs(g, dtype):
    logits = randn(g, dtype, N, C, H, W, scale=2.0)
    target = torch.randint(0, C - 1, (N, H, W), generator=g)  # class C-1 never in the target
    target[0] = 0  # sample 0: background only
    return logits, target


def sigmoid_inputs(g, dtype):
    logits = randn(g, dtype, N, 1, H, W, scale=2.0)
    target = (torch.rand(N, H, W, generator=g) > 0.6).long()
    return logits, target


def void_inputs(g, dtype):
    """Softmax inputs with a border of void pixels (255, as VOC marks object outlines), one sample all void."""
    logits, target = softmax_inputs(g, dtype)
    target[:, 0, :] = 255
    target[:, :, -1] = 255
    target[1] = 255
    return logits, target


CASES = {
    "dice": [
        Case(softmax_inputs, hand_dice, hparams={"smooth": 1.0}, label="softmax"),
        Case(sigmoid_inputs, hand_dice, hparams={"smooth": 0.0}, label="sigmoid-unsmoothed"),
        Case(void_inputs, hand_dice, hparams={"ignore_index": 255, "weight": [0.2, 1.0, 2.0, 0.5]}, label="void-weighted"),
    ],
    "jaccard": [
        Case(softmax_inputs, hand_jaccard, hparams={"smooth": 0.5}, label="softmax"),
        Case(sigmoid_inputs, hand_jaccard, label="sigmoid"),
        Case(void_inputs, hand_jaccard, hparams={"ignore_index": 255, "weight": [1.0, 0.0, 3.0, 1.0]}, label="void-weighted"),
    ],
    "tversky": [
        Case(softmax_inputs, hand_tversky, hparams={"alpha": 0.3, "beta": 0.7}, label="softmax"),
        Case(sigmoid_inputs, hand_tversky, hparams={"alpha": 0.8, "beta": 0.2, "smooth": 0.1}, label="sigmoid"),
        Case(
            void_inputs,
            hand_tversky,
            hparams={"alpha": 0.3, "beta": 0.7, "ignore_index": 255, "weight": [0.5, 1, 1, 2]},
            label="void-weighted",
        ),
    ],
}
