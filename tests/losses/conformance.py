"""The shape of a reference check, shared by every loss family's ``cases_<family>.py``.

Each family module defines ``CASES: dict[str, list[Case]]`` mapping a registered loss name to the
checks that prove it; ``test_conformance.py`` runs every case of every registered loss and fails
when a registered loss has none, so a new loss is tested by being added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

InputMaker = Callable[[torch.Generator, torch.dtype], tuple[Tensor, ...]]


@dataclass
class Case:
    """Inputs to ``forward`` made from a seeded generator, and an independent reference value.

    ``reference(*inputs, reduction=..., **hparams)`` computes what the loss must return: one of the
    references in ``bench/references/<family>.py`` (torch, torchvision, or the formula by hand).
    ``grad_inputs`` are the positions of the inputs that ``gradcheck`` differentiates; ``reductions``
    those the loss supports here.
    """

    make_inputs: InputMaker
    reference: Callable[..., Tensor]
    hparams: dict[str, Any] = field(default_factory=dict)
    grad_inputs: tuple[int, ...] = (0,)
    reductions: tuple[str, ...] = ("none", "mean", "sum")
    label: str = ""
    # tolerance of the bf16-autocast check against the float32 value (relative, absolute)
    autocast_tolerance: tuple[float, float] = (3e-2, 3e-2)
    # False where the gradient is by design not the derivative of the value (CIoU holds its alpha
    # constant, as torchvision does); the family's own tests then check the gradient another way
    gradcheck: bool = True

    def id(self, name: str) -> str:
        return f"{name}-{self.label}" if self.label else name


def randn(g: torch.Generator, dtype: torch.dtype, *shape: int, scale: float = 1.0) -> Tensor:
    """Standard-normal values from ``g`` in ``dtype``."""
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)
