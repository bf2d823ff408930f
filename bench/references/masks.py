"""References for the mask losses: the soft overlap scores written out by hand, sample by sample, class by class."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.references.common import reduce_reference


def hand_reference(formula):
    """Loop over samples and classes; skip a class absent from the target and the hard prediction.

    Pixels whose target is ``ignore_index`` are dropped before anything is summed; ``weight`` weighs the classes.
    """

    def reference(logits, target, reduction, smooth=1.0, eps=1e-7, weight=None, ignore_index=None, **hparams):
        values = []
        for n in range(logits.shape[0]):
            keep = target[n] != ignore_index if ignore_index is not None else torch.ones_like(target[n], dtype=torch.bool)
            if logits.shape[1] == 1:
                probs = [torch.sigmoid(logits[n, 0])]
                truths = [(target[n] == 1).to(logits.dtype)]
                hards = [logits[n, 0] > 0]
            else:
                soft = torch.softmax(logits[n], 0)
                probs = list(soft)
                truths = [(target[n] == c).to(logits.dtype) for c in range(logits.shape[1])]
                hards = [logits[n].argmax(0) == c for c in range(logits.shape[1])]
            losses, weights = [], []
            for c, (p, t, hard) in enumerate(zip(probs, truths, hards)):
                p, t, hard = p[keep], t[keep], hard[keep]
                if t.sum() == 0 and not hard.any():
                    continue
                tp, fp, fn = (p * t).sum(), (p * (1 - t)).sum(), ((1 - p) * t).sum()
                losses.append(1 - formula(tp, fp, fn, smooth, **hparams))
                weights.append(1.0 if weight is None else float(weight[c]))
            total = sum(weights)
            mean = sum(w * v for w, v in zip(weights, losses)) / total if total else logits.new_zeros(())
            values.append(mean)
        return reduce_reference(torch.stack(values), reduction)

    return reference


def dice(tp, fp, fn, smooth):
    return (2 * tp + smooth) / (2 * tp + fp + fn + smooth)


def jaccard(tp, fp, fn, smooth):
    return (tp + smooth) / (tp + fp + fn + smooth)


def tversky(tp, fp, fn, smooth, alpha, beta):
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


hand_dice, hand_jaccard, hand_tversky = hand_reference(dice), hand_reference(jaccard), hand_reference(tversky)


def batched_reference(formula):
    """The same scores over the whole batch at once (one-hot targets, sums over pixels): what the benchmark times.

    Absent classes (not in the target, not in the hard prediction) are left out of each sample's mean, as above.
    """

    def reference(logits, target, reduction, smooth=1.0, eps=1e-7, weight=None, ignore_index=None, **hparams):
        classes, pixels = logits.shape[1], tuple(range(2, logits.ndim))
        keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
        target = torch.where(keep, target, 0)
        if classes == 1:
            probs, truths, hards = torch.sigmoid(logits), (target == 1).unsqueeze(1).to(logits.dtype), logits > 0
        else:
            probs = torch.softmax(logits, 1)
            truths = F.one_hot(target, classes).movedim(-1, 1).to(logits.dtype)
            hards = F.one_hot(logits.argmax(1), classes).movedim(-1, 1).bool()
        keep = keep.unsqueeze(1)
        probs, truths = probs * keep, truths * keep
        tp, fp, fn = (probs * truths).sum(pixels), (probs * (1 - truths)).sum(pixels), ((1 - probs) * truths).sum(pixels)
        counted = ((truths.sum(pixels) > 0) | (hards & keep).flatten(2).any(-1)).to(logits.dtype)
        if weight is not None:
            counted = counted * torch.tensor(weight, dtype=logits.dtype, device=logits.device)
        losses = 1 - formula(tp, fp, fn, smooth, **hparams)
        values = (losses * counted).sum(1) / counted.sum(1).clamp_min(torch.finfo(logits.dtype).tiny)
        return reduce_reference(values, reduction)

    return reference


batched_dice, batched_jaccard = batched_reference(dice), batched_reference(jaccard)
batched_tversky = batched_reference(tversky)
