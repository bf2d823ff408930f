"""Reference cases for the mask losses: the soft overlap scores written out by hand, class by class."""

from __future__ import annotations

import torch

from tests.losses.conformance import Case, randn, reduce_reference

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


def hand_reference(formula):
    """Loop over samples and classes; skip a class absent from the target and the hard prediction."""

    def reference(logits, target, reduction, smooth=1.0, eps=1e-7, **hparams):
        values = []
        for n in range(logits.shape[0]):
            if logits.shape[1] == 1:
                probs = [torch.sigmoid(logits[n, 0])]
                truths = [(target[n] == 1).to(logits.dtype)]
                hards = [logits[n, 0] > 0]
            else:
                soft = torch.softmax(logits[n], 0)
                probs = list(soft)
                truths = [(target[n] == c).to(logits.dtype) for c in range(logits.shape[1])]
                hards = [logits[n].argmax(0) == c for c in range(logits.shape[1])]
            losses = []
            for p, t, hard in zip(probs, truths, hards):
                if t.sum() == 0 and not hard.any():
                    continue
                tp, fp, fn = (p * t).sum(), (p * (1 - t)).sum(), ((1 - p) * t).sum()
                losses.append(1 - formula(tp, fp, fn, smooth, **hparams))
            values.append(torch.stack(losses).mean() if losses else logits.new_zeros(()))
        return reduce_reference(torch.stack(values), reduction)

    return reference


def dice(tp, fp, fn, smooth):
    return (2 * tp + smooth) / (2 * tp + fp + fn + smooth)


def jaccard(tp, fp, fn, smooth):
    return (tp + smooth) / (tp + fp + fn + smooth)


def tversky(tp, fp, fn, smooth, alpha, beta):
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


CASES = {
    "dice": [
        Case(softmax_inputs, hand_reference(dice), hparams={"smooth": 1.0}, label="softmax"),
        Case(sigmoid_inputs, hand_reference(dice), hparams={"smooth": 0.0}, label="sigmoid-unsmoothed"),
    ],
    "jaccard": [
        Case(softmax_inputs, hand_reference(jaccard), hparams={"smooth": 0.5}, label="softmax"),
        Case(sigmoid_inputs, hand_reference(jaccard), label="sigmoid"),
    ],
    "tversky": [
        Case(softmax_inputs, hand_reference(tversky), hparams={"alpha": 0.3, "beta": 0.7}, label="softmax"),
        Case(sigmoid_inputs, hand_reference(tversky), hparams={"alpha": 0.8, "beta": 0.2, "smooth": 0.1}, label="sigmoid"),
    ],
}
