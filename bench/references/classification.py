"""References for the classification losses: torch, torchvision, and the formulas written out by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision

from bench.references.common import reduce_reference


def torch_ce(logits, target, reduction, weight=None, label_smoothing=0.0, ignore_index=-100):
    w = None if weight is None else torch.tensor(weight, dtype=logits.dtype, device=logits.device)
    return F.cross_entropy(logits, target, weight=w, label_smoothing=label_smoothing, reduction=reduction)


def hand_softmax_focal(logits, target, reduction, gamma, alpha):
    p_t = logits.softmax(1)[torch.arange(len(target), device=logits.device), target]
    values = -alpha * (1 - p_t) ** gamma * torch.log(p_t)
    return {"none": values, "mean": values.mean(), "sum": values.sum()}[reduction]


def torchvision_focal(logits, target, reduction, gamma, alpha):
    return torchvision.ops.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction=reduction)


def torch_bce(logits, target, reduction, weight=None, pos_weight=None):
    def t(v):
        return None if v is None else torch.tensor(v, dtype=logits.dtype, device=logits.device)

    return F.binary_cross_entropy_with_logits(logits, target, weight=t(weight), pos_weight=t(pos_weight), reduction=reduction)


def effective_number_weights(counts, beta, dtype, device=None):
    """Cui et al. 2019, eq. in Sec. 3: weight 1 / E_n with E_n = (1 - beta^n) / (1 - beta), rescaled to sum to C."""
    n = torch.tensor(counts, dtype=dtype, device=device)
    w = (1 - beta) / (1 - beta**n)
    return w / w.sum() * len(counts)


def hand_class_balanced(logits, target, reduction, beta, samples_per_class, base="ce", gamma=2.0):
    w = effective_number_weights(samples_per_class, beta, logits.dtype, logits.device)
    p_t = logits.softmax(1)[torch.arange(len(target), device=logits.device), target]
    values = -w[target] * torch.log(p_t) * ((1 - p_t) ** gamma if base == "focal" else 1.0)
    return reduce_reference(values, reduction)


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
