"""Classification losses: ``forward(logits [N,C] or [N], target)`` with class indices or probabilities."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, as_float, autocast_off
from losses.registry import register


def _optional_vector(loss: Loss, arg: str, value: Sequence[float] | float | None, positive: bool) -> Tensor | None:
    """Validate a per-class weight vector (or scalar) hyperparameter and return it as a tensor."""
    if value is None:
        return None
    values = [value] if isinstance(value, (int, float)) else list(value)
    bound = "> 0" if positive else ">= 0"
    for v in values:
        loss.check_number(arg, v)
        loss.check(v > 0 if positive else v >= 0, f"every {arg} must be {bound}", list(values))
    return torch.tensor(values, dtype=torch.float32)


def check_logits(loss: Loss, logits: Tensor) -> None:
    """Logits must be floating point; rows that already look like probabilities earn a warning."""
    if not logits.is_floating_point():
        raise loss.input_error("logits", "a floating-point tensor", logits.dtype)
    if (
        loss.check_values(logits)
        and logits.ndim >= 2
        and logits.shape[1] > 1
        and logits.numel()
        and bool(((logits >= 0) & (logits <= 1)).all())
        and bool(torch.allclose(logits.detach().sum(1).float(), torch.ones((), device=logits.device), atol=1e-3))
    ):
        warnings.warn(
            f"loss '{loss.name}': logits look like probabilities (each row is in [0, 1] and sums to 1); "
            "pass raw scores, not softmax outputs",
            stacklevel=3,
        )


def check_class_indices(loss: Loss, logits: Tensor, target: Tensor, ignore_index: int | None = None) -> None:
    """Integer targets must be class indices in [0, C) (or ``ignore_index``), shaped like the batch."""
    num_classes = logits.shape[1]
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise loss.input_error(
            "target", f"class indices of shape {tuple(logits.shape[:1] + logits.shape[2:])}", tuple(target.shape)
        )
    if not loss.check_values(target):
        return
    valid = target if ignore_index is None else target[target != ignore_index]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= num_classes):
        raise loss.input_error(
            "target",
            f"class indices in [0, {num_classes - 1}]",
            f"values from {int(valid.min())} to {int(valid.max())}",
        )


@register("ce", kind="classification")
class CrossEntropy(Loss):
    """Softmax cross-entropy ``-sum_c q_c log softmax(z)_c`` with optional label smoothing.

    Matches ``torch.nn.CrossEntropyLoss``; targets are class indices or class probabilities.
    The default classification loss.
    """

    def __init__(
        self,
        weight: Sequence[float] | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _optional_vector(self, "weight", weight, positive=False), persistent=False)
        self.check(isinstance(ignore_index, int), "ignore_index must be an integer", ignore_index)
        self.ignore_index = ignore_index
        self.label_smoothing = self.check_number("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        check_logits(self, logits)
        if self.weight is not None and self.weight.numel() != logits.shape[1]:
            raise self.input_error("logits", f"{self.weight.numel()} classes to match weight", logits.shape[1])
        if target.is_floating_point():
            if target.shape != logits.shape:
                raise self.input_error(
                    "target", f"class indices or probabilities of shape {tuple(logits.shape)}", tuple(target.shape)
                )
        else:
            check_class_indices(self, logits, target, self.ignore_index)
            if (
                self.reduction == "mean"
                and target.numel()
                and self.check_values(target)
                and bool((target == self.ignore_index).all())
            ):
                warnings.warn(f"loss '{self.name}': every target equals ignore_index; the loss is 0", stacklevel=2)
                return logits.sum() * 0.0
        with autocast_off(logits):
            logits = as_float(logits)
            target = as_float(target) if target.is_floating_point() else target
            weight = None if self.weight is None else self.weight.to(logits.dtype)
            return F.cross_entropy(
                logits,
                target,
                weight=weight,
                ignore_index=self.ignore_index,
                label_smoothing=self.label_smoothing,
                reduction=self.reduction,
            )


@register("label_smoothing", kind="classification")
class LabelSmoothing(CrossEntropy):
    """Cross-entropy against ``(1 - eps) * onehot + eps / C`` (Szegedy et al. 2016), eps = 0.1 by default.

    Reach for it to calibrate an over-confident classifier (Müller et al. 2019).
    """

    def __init__(
        self,
        label_smoothing: float = 0.1,
        weight: Sequence[float] | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)


def sigmoid_focal(logits: Tensor, target: Tensor, gamma: float, alpha: float | None) -> Tensor:
    """Per-element sigmoid focal loss, the formula of ``torchvision.ops.sigmoid_focal_loss``."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    one_minus_pt = (1 - (p * target + (1 - p) * (1 - target))).clamp_min(1e-30)  # finite grad if gamma < 1
    values = ce * one_minus_pt**gamma if gamma else ce
    if alpha is not None:
        values = (alpha * target + (1 - alpha) * (1 - target)) * values
    return values


def softmax_focal(logits: Tensor, target: Tensor, gamma: float, alpha: Tensor | float | None) -> Tensor:
    """Per-sample softmax focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` for class indices."""
    log_pt = F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    one_minus_pt = (-torch.expm1(log_pt)).clamp_min(1e-30)  # finite grad when gamma < 1 and p_t -> 1
    values = -log_pt * one_minus_pt**gamma if gamma else -log_pt
    if isinstance(alpha, Tensor):
        values = alpha.to(values.dtype)[target] * values
    elif alpha is not None:
        values = alpha * values
    return values


@register("focal", kind="classification")
class Focal(Loss):
    """Focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017) that down-weights easy examples.

    Float 0/1 targets of the logits' shape: sigmoid focal, equal to ``torchvision.ops.sigmoid_focal_loss``.
    Class indices: softmax focal (alpha a scalar or one weight per class). alpha < 0 or null: no weighting.
    """

    def __init__(
        self, gamma: float = 2.0, alpha: float | Sequence[float] | None = 0.25, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        self.gamma = self.check_number("gamma", gamma, 0.0)
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
            self.check_number("alpha", alpha, high=1.0)
            alpha = None if alpha < 0 else float(alpha)
        vector = None
        if alpha is not None and not isinstance(alpha, float):
            vector, alpha = _optional_vector(self, "alpha", alpha, positive=False), None
        self.register_buffer("alpha_vector", vector, persistent=False)
        self.alpha = alpha

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        check_logits(self, logits)
        with autocast_off(logits):
            logits = as_float(logits)
            if target.is_floating_point():
                if target.shape != logits.shape:
                    raise self.input_error(
                        "target", f"0/1 floats of the logits' shape {tuple(logits.shape)}", tuple(target.shape)
                    )
                if self.alpha_vector is not None:
                    raise self.input_error("alpha", "a scalar for sigmoid focal (float targets)", "a per-class list")
                return self.reduce(sigmoid_focal(logits, target.to(logits.dtype), self.gamma, self.alpha))
            if logits.ndim < 2:
                raise self.input_error("logits", "[N, C] scores for class-index targets", tuple(logits.shape))
            check_class_indices(self, logits, target)
            alpha = self.alpha_vector if self.alpha_vector is not None else self.alpha
            if isinstance(alpha, Tensor) and alpha.numel() != logits.shape[1]:
                raise self.input_error("logits", f"{alpha.numel()} classes to match alpha", logits.shape[1])
            return self.reduce(softmax_focal(logits, target, self.gamma, alpha))


@register("bce_logits", kind="classification")
class BCEWithLogits(Loss):
    """Binary cross-entropy on logits, ``torch.nn.BCEWithLogitsLoss``; one independent sigmoid per class.

    ``weight`` rescales every element (or every class); ``pos_weight`` rescales only the positive term,
    to trade recall for precision on imbalanced labels. Class indices become one-hot targets.
    """

    def __init__(
        self,
        weight: Sequence[float] | float | None = None,
        pos_weight: Sequence[float] | float | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _optional_vector(self, "weight", weight, positive=False), persistent=False)
        self.register_buffer(
            "pos_weight", _optional_vector(self, "pos_weight", pos_weight, positive=True), persistent=False
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        check_logits(self, logits)
        if not target.is_floating_point():
            if logits.ndim >= 2 and target.shape == logits.shape[:1]:
                check_class_indices(self, logits, target)
                target = F.one_hot(target, logits.shape[1])
            elif target.shape == logits.shape and (not self.check_values(target) or bool(((target == 0) | (target == 1)).all())):
                pass
            else:
                raise self.input_error(
                    "target", f"0/1 labels of shape {tuple(logits.shape)} or class indices", tuple(target.shape)
                )
        elif target.shape != logits.shape:
            raise self.input_error("target", f"probabilities of shape {tuple(logits.shape)}", tuple(target.shape))
        with autocast_off(logits):
            logits = as_float(logits)
            target = target.to(logits.dtype)
            values = F.binary_cross_entropy_with_logits(
                logits,
                target,
                weight=None if self.weight is None else self.weight.to(logits.dtype),
                pos_weight=None if self.pos_weight is None else self.pos_weight.to(logits.dtype),
                reduction="none",
            )
            return self.reduce(values)
