"""What every family's references share: reducing a per-element value the way a loss reduces it."""

from __future__ import annotations

from torch import Tensor


def reduce_reference(values: Tensor, reduction: str) -> Tensor:
    """Reduce a hand-computed per-element reference the way the loss should."""
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "batchmean":
        return values.sum() / values.shape[0]
    return values.mean()
