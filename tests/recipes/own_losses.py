"""Losses as a user writes them outside this package: plain ``nn.Module`` classes, reached through ``_target_``."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from losses import Loss


class SmoothedCrossEntropy(nn.Module):
    """Cross-entropy with label smoothing; declares its kind as a class attribute and has no ``name``."""

    kind = "classification"
    training_calls: ClassVar[list[float]] = []  # the values computed in training mode, for the tests to read

    def __init__(self, smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__()
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1) (got {smoothing})")
        self.smoothing, self.reduction = smoothing, reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        value = F.cross_entropy(logits, target, label_smoothing=self.smoothing, reduction=self.reduction)
        if self.training:
            self.training_calls.append(float(value.detach()))
        return value


class KindlessLoss(nn.Module):
    """Cross-entropy that does not say what it takes: the config must declare its kind."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target)


class ScaledL1Box(nn.Module):
    """L1 between xyxy boxes times ``scale``; honours the ``reduction`` detection sets to ``sum``."""

    kind = "boxes"
    name = "scaled_l1_box"

    def __init__(self, scale: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.scale, self.reduction = scale, reduction

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.scale * F.l1_loss(pred, target, reduction=self.reduction)


class PolyFocal(Loss):
    """A subclass of the project's ``Loss`` (its checks and reduction), not registered: ``(1 - p_t)^gamma * CE``."""

    kind = "classification"

    def __init__(self, gamma: float = 2.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.gamma = self.check_number("gamma", gamma, low=0)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        ce = F.cross_entropy(logits.float(), target, reduction="none")
        return self.reduce((1 - (-ce).exp()) ** self.gamma * ce)
