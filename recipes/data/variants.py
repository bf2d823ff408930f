"""Harder versions of a training split: a long-tailed subsample (Cui et al. 2019) and noisy labels.

Both are seeded and touch only the training split, so validation and test stay balanced and clean.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def derived_generator(seed: int, stream: int) -> torch.Generator:
    """A generator for one named use of ``seed`` (``stream``), independent of the others drawn from it."""
    state = np.random.SeedSequence([seed, stream]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def long_tail_counts(n_max: int, num_classes: int, imbalance: float) -> list[int]:
    """``n_c = n_max * (1 / imbalance)^(c / (C - 1))``, rounded: class 0 keeps ``n_max``, the last ``n_max / imbalance``."""
    if num_classes < 2:
        return [n_max] * num_classes
    return [round(n_max * imbalance ** (-c / (num_classes - 1))) for c in range(num_classes)]


def inverse_frequency_weights(imbalance: float | None, num_classes: int) -> list[float] | None:
    """Class weights proportional to ``1 / n_c`` of the long-tail profile, scaled to average 1 (null: balanced)."""
    if imbalance is None:
        return None
    raw = [float(imbalance) ** (c / (num_classes - 1)) for c in range(num_classes)]
    return [w * num_classes / sum(raw) for w in raw]


def long_tail_indices(labels: Tensor, num_classes: int, imbalance: float, seed: int) -> Tensor:
    """Indices of a seeded long-tailed subsample of ``labels`` with :func:`long_tail_counts` per class.

    ``n_max`` is the smallest class count, so every class can supply its share; the indices keep the
    original order of the examples they pick.
    """
    available = torch.bincount(labels.flatten().long().cpu(), minlength=num_classes)[:num_classes]
    counts = long_tail_counts(int(available.min()), num_classes, imbalance)
    generator = derived_generator(seed, stream=1)
    keep = []
    for c, n in enumerate(counts):
        idx = (labels.cpu() == c).nonzero().squeeze(1)
        keep.append(idx[torch.randperm(idx.numel(), generator=generator)[:n]])
    return torch.cat(keep).sort().values


def noisy_labels(labels: Tensor, fraction: float, num_classes: int, seed: int) -> Tensor:
    """A copy of ``labels`` in which exactly ``round(fraction * N)`` labels, chosen at random, become another class.

    The new class is drawn uniformly from the ``C - 1`` other classes, so every chosen label changes.
    """
    generator = derived_generator(seed, stream=2)
    noisy = labels.clone()
    n = round(fraction * labels.numel())
    chosen = torch.randperm(labels.numel(), generator=generator)[:n]
    shift = torch.randint(1, num_classes, (n,), generator=generator)
    noisy[chosen] = (labels[chosen] + shift.to(labels.dtype)) % num_classes
    return noisy
