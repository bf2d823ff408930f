"""Dense segmentation losses: ``forward(logits [N,C,H,W] or [N,1,H,W], target [N,H,W])``, one value per sample.

Probabilities are ``softmax`` over C > 1 channels (target: class indices in [0, C)) or ``sigmoid`` of a
single channel (target: 0/1 foreground). Per sample and class, with p the probabilities and t the one-hot
target summed over pixels: ``I = sum p t``, ``P = sum p``, ``T = sum t``; the loss is ``1 - score``.

Absent classes: a class that is absent from a sample's target (T = 0) *and* from its hard prediction
(argmax over C, or p > 0.5 for one channel, at no pixel) is left out of that sample's mean over classes:
there was nothing to find and nothing was wrongly found, so it neither rewards nor dilutes. A class present
in either counts (a false positive scores ``smooth / (P + smooth)``, near 0). A sample with no counted class
(binary: empty target, empty prediction) has loss 0. ``smooth > 0`` also gives false positives a gradient.

``ignore_index`` (e.g. 255, VOC's and Cityscapes' void label): those pixels count in no sum, as in
segmentation_models_pytorch. ``weight`` (one per channel): the mean over the counted classes is weighted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, as_float, autocast_off
from losses.classification import _optional_vector
from losses.registry import register

# smooth is a pseudo-count of pixels (1 in V-Net, at most 100 in common recipes); once it outweighs the masks'
# sums P + T, 1 - score ~ (P + T - 2I) / smooth and its gradient fade to 0, and at 1e30 float32 rounds every score
# to exactly 1. 1e4 is 100x the largest common value and the area of a 100 x 100 image.
MAX_SMOOTH = 1e4


def overlap_sums(logits: Tensor, target: Tensor, ignore_index: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``I, P, T`` per sample and class ``[N, C]``, and the mask of the (sample, class) pairs that count.

    Pixels whose target is ``ignore_index`` are left out of every sum and of the hard prediction.
    """
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    target = target.masked_fill(~valid, 0)
    keep = valid.unsqueeze(1)
    if logits.shape[1] == 1:
        prob = torch.sigmoid(logits)
        onehot = target.unsqueeze(1).to(prob.dtype)
        hard = logits > 0
    else:
        prob = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(prob.dtype)
        hard = F.one_hot(logits.argmax(1), logits.shape[1]).movedim(-1, 1).bool()
    if ignore_index is not None:
        prob, onehot = prob * keep, onehot * keep
    predicted = (hard & keep).flatten(2).any(-1)
    inter = (prob * onehot).flatten(2).sum(-1)
    pred_sum = prob.flatten(2).sum(-1)
    target_sum = onehot.flatten(2).sum(-1)
    counted = predicted | (target_sum > 0)
    return inter, pred_sum, target_sum, counted


class OverlapLoss(Loss):
    """What Dice, Jaccard and Tversky share: input checks, the sums, the absent-class policy, reduction."""

    search_space = {"smooth": (0.1, 10.0, "log")}
    not_searched = {**Loss.not_searched, "weight": "one weight per class: the data's, not a search's"}

    def __init__(
        self,
        smooth: float = 1.0,
        eps: float = 1e-7,
        weight: Sequence[float] | None = None,
        ignore_index: int | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.smooth = self.check_number("smooth", smooth, 0.0)
        self.check(
            smooth <= MAX_SMOOTH,
            f"smooth must be <= {MAX_SMOOTH:g}: it is added to the pixel sums, and once it outweighs them every "
            "score is near 1 and the loss near 0 at every step (1 is the usual value)",
            smooth,
        )
        self.eps = self.check_number("eps", eps, 0.0, low_open=True)
        self.register_buffer("weight", _optional_vector(self, "weight", weight, positive=False), persistent=False)
        integer = ignore_index is None or (isinstance(ignore_index, int) and not isinstance(ignore_index, bool))
        self.check(integer, "ignore_index must be an integer or null", ignore_index)
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self.check_inputs(logits, target)
        with autocast_off(logits):
            logits = as_float(logits)
            inter, pred_sum, target_sum, counted = overlap_sums(logits, target.long(), self.ignore_index)
            score = self.score(inter, pred_sum, target_sum)
            counted = counted.to(score.dtype)
            if self.weight is not None:
                counted = counted * self.weight.to(score.dtype)
            total = counted.sum(1).clamp_min(torch.finfo(score.dtype).tiny)  # no counted class: 0 / tiny = 0
            values = ((1 - score) * counted).sum(1) / total
            return self.reduce(values)

    def check_inputs(self, logits: Tensor, target: Tensor) -> None:
        if not logits.is_floating_point():
            raise self.input_error("logits", "a floating-point tensor", logits.dtype)
        if logits.ndim < 3:
            raise self.input_error("logits", "scores of shape [N, C, H, W] or [N, 1, H, W]", tuple(logits.shape))
        if target.is_floating_point() or target.dtype == torch.bool:
            raise self.input_error("target", "integer class indices (long)", target.dtype)
        if target.shape != logits.shape[:1] + logits.shape[2:]:
            raise self.input_error(
                "target", f"class indices of shape {tuple(logits.shape[:1] + logits.shape[2:])}", tuple(target.shape)
            )
        if self.weight is not None and self.weight.numel() != logits.shape[1]:
            raise self.input_error("logits", f"{self.weight.numel()} channels to match weight", logits.shape[1])
        high = max(logits.shape[1] - 1, 1)  # one sigmoid channel: 0/1 targets
        if not target.numel() or not self.check_values(target):
            return
        valid = target if self.ignore_index is None else target[target != self.ignore_index]  # a host sync
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) > high):
            ignored = "" if self.ignore_index is None else f" or ignore_index {self.ignore_index}"
            raise self.input_error(
                "target", f"class indices in [0, {high}]{ignored}", f"values from {int(valid.min())} to {int(valid.max())}"
            )

    def score(self, inter: Tensor, pred_sum: Tensor, target_sum: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@register("dice", kind="masks")
class Dice(OverlapLoss):
    """Soft Dice ``1 - (2 I + smooth) / (P + T + smooth)`` per class, averaged (Milletari et al. 2016, V-Net).

    Insensitive to class imbalance (a small object counts as much as the background); the segmentation default.
    """

    citations = ("Milletari et al. 2016",)

    def score(self, inter: Tensor, pred_sum: Tensor, target_sum: Tensor) -> Tensor:
        return (2 * inter + self.smooth) / (pred_sum + target_sum + self.smooth).clamp_min(self.eps)


@register("jaccard", kind="masks")
class Jaccard(OverlapLoss):
    """Soft Jaccard (IoU) ``1 - (I + smooth) / (P + T - I + smooth)`` per class (Rahman & Wang 2016).

    Optimises IoU directly; penalises errors more than Dice where overlap is already large.
    """

    citations = ("Rahman & Wang 2016",)

    def score(self, inter: Tensor, pred_sum: Tensor, target_sum: Tensor) -> Tensor:
        return (inter + self.smooth) / (pred_sum + target_sum - inter + self.smooth).clamp_min(self.eps)


@register("tversky", kind="masks")
class Tversky(OverlapLoss):
    """Tversky ``1 - (I + smooth) / (I + alpha FP + beta FN + smooth)``, FP = P - I, FN = T - I (Salehi et al. 2017).

    beta > alpha favours recall (thin or small structures); alpha = beta = 1 is Jaccard, 0.5 is Dice (with 2 smooth).
    """

    search_space = {"alpha": (0.1, 0.9), "beta": (0.1, 0.9), "smooth": (0.1, 10.0, "log")}
    not_searched = {**Loss.not_searched, "weight": "one weight per class: the data's, not a search's"}

    citations = ("Salehi et al. 2017",)

    def __init__(
        self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0, eps: float = 1e-7,
        weight: Sequence[float] | None = None, ignore_index: int | None = None, reduction: str = "mean",
    ) -> None:  # fmt: skip
        super().__init__(smooth=smooth, eps=eps, weight=weight, ignore_index=ignore_index, reduction=reduction)
        self.alpha = self.check_number("alpha", alpha, 0.0)
        self.beta = self.check_number("beta", beta, 0.0)
        self.check(self.alpha + self.beta > 0, "alpha + beta must be > 0", (alpha, beta))

    def score(self, inter: Tensor, pred_sum: Tensor, target_sum: Tensor) -> Tensor:
        false_pos, false_neg = pred_sum - inter, target_sum - inter
        denominator = inter + self.alpha * false_pos + self.beta * false_neg + self.smooth
        return (inter + self.smooth) / denominator.clamp_min(self.eps)
