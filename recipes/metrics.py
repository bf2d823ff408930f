"""Metrics that torchmetrics lacks, written as torchmetrics ``Metric`` classes so they sync under DDP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric


class NegativeLogLikelihood(Metric):
    """Mean ``-log softmax(logits)[target]`` over every sample seen, in nats."""

    higher_is_better = False
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        self.total += F.cross_entropy(logits.float(), target, reduction="sum").double()
        self.count += target.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class IntervalCoverage(Metric):
    """Fraction of targets inside their predicted interval ``[lower, upper]`` (bounds may be infinite)."""

    higher_is_better = None  # the goal is the nominal level, not 1
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("covered", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, lower: Tensor, upper: Tensor, target: Tensor) -> None:
        self.covered += ((target >= lower) & (target <= upper)).sum()
        self.count += target.numel()

    def compute(self) -> Tensor:
        return self.covered.float() / self.count.clamp_min(1)


class MeanConfidence(Metric):
    """Mean of the largest predicted probability, ``mean_i max_c p_ic``: compare with accuracy for over-confidence.

    ``update(probs, target)`` takes the arguments of the accuracy and ECE metrics (the target is unused),
    so it sits in the same ``MetricCollection``.
    """

    higher_is_better = None
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: Tensor, target: Tensor | None = None) -> None:
        self.total += probs.float().amax(1).sum().double()
        self.count += probs.shape[0]

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()
