"""Metrics that torchmetrics lacks, written as torchmetrics ``Metric`` classes so they sync under DDP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric


class SampleMean(Metric):
    """The mean of a per-sample quantity over every sample seen (float64 sums, synced under DDP)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def accumulate(self, total: Tensor, count: int) -> None:
        """Add the sum of the quantity over ``count`` samples."""
        self.total += total.double()
        self.count += count

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class NegativeLogLikelihood(SampleMean):
    """Mean ``-log softmax(logits)[target]`` over every sample seen, in nats."""

    higher_is_better = False

    def update(self, logits: Tensor, target: Tensor) -> None:
        self.accumulate(F.cross_entropy(logits.float(), target, reduction="sum"), target.numel())


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


class MeanConfidence(SampleMean):
    """Mean of the largest predicted probability, ``mean_i max_c p_ic``: compare with accuracy for over-confidence.

    ``update(probs, target)`` takes the arguments of the accuracy and ECE metrics (the target is unused),
    so it sits in the same ``MetricCollection``.
    """

    higher_is_better = None

    def update(self, probs: Tensor, target: Tensor | None = None) -> None:
        self.accumulate(probs.float().amax(1).sum(), probs.shape[0])


class ReliabilityBins(Metric):
    """A reliability diagram's numbers: per confidence bin (``n_bins`` equal widths of [0, 1], binned as
    torchmetrics' calibration error bins them, except that a confidence of exactly 1 joins the last bin), the
    count, mean top-1 confidence and accuracy of the samples. The ECE is ``sum(count / N * |accuracy - confidence|)``
    over the bins (Guo et al. 2017, eq. 3)."""

    full_state_update = False

    def __init__(self, n_bins: int = 15) -> None:
        super().__init__()
        self.n_bins = n_bins
        for name in ("count", "confidence", "correct"):
            self.add_state(name, default=torch.zeros(n_bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: Tensor, target: Tensor) -> None:
        confidence, predicted = probs.float().max(1)
        boundaries = torch.linspace(0, 1, self.n_bins + 1, device=probs.device)
        index = (torch.bucketize(confidence, boundaries, right=True) - 1).clamp(0, self.n_bins - 1)  # 1.0: last bin
        self.count.index_add_(0, index, torch.ones_like(confidence, dtype=torch.float64))
        self.confidence.index_add_(0, index, confidence.double())
        self.correct.index_add_(0, index, (predicted == target).double())

    def compute(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(count, mean confidence, accuracy)`` per bin; empty bins have confidence and accuracy 0."""
        seen = self.count.clamp_min(1)
        return self.count, self.confidence / seen, self.correct / seen
