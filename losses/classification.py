"""Classification losses: ``forward(logits [N,C] or [N], target)`` with class indices or probabilities."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import ClassScores, Loss, as_float, autocast_off
from losses.registry import register

PROBABILITY_CHECK_MIN = 32  # a batch of at least this many scores all in [0, 1] looks like sigmoid outputs

# what a weight vector of zeros does, per loss: the reason it is refused
ZERO_WEIGHTS_NAN = "with every class weighted 0 the weighted mean is 0/0 (NaN) and the sum 0"
ZERO_WEIGHTS_NOTHING = "with every class weighted 0 the loss is 0 for every sample and nothing is learnt"


def _optional_vector(
    loss: Loss, arg: str, value: Sequence[float] | float | None, positive: bool, all_zero: str = ""
) -> Tensor | None:
    """Validate a per-class weight vector (or scalar) hyperparameter and return it as a tensor.

    ``all_zero``: why a vector of zeros is refused (``positive`` vectors have none); empty: they pass.
    """
    if value is None:
        return None
    values = [value] if isinstance(value, (int, float)) else list(value)
    bound = "> 0" if positive else ">= 0"
    for v in values:
        loss.check_number(arg, v)
        loss.check(v > 0 if positive else v >= 0, f"every {arg} must be {bound}", list(values))
    loss.check(not all_zero or any(v > 0 for v in values), f"{arg} must have a value > 0: {all_zero}", list(values))
    return torch.tensor(values, dtype=torch.float32)


def check_class_vector(loss: Loss, arg: str, vector: Tensor | None, classes: ClassScores) -> None:
    """A per-class hyperparameter must hold one value per class score the task gives the loss."""
    if vector is None:
        return
    values = [float(f"{v:.6g}") for v in vector.tolist()]
    loss.check(
        len(values) == classes.count,
        f"{arg} must have one value per class: {classes.count} ({classes.source}), not {len(values)}",
        values,
    )


def check_logits(loss: Loss, logits: Tensor) -> None:
    """Logits must be floating point; scores that already look like probabilities earn a warning.

    Two shapes of the mistake are caught: rows in [0, 1] that sum to 1 (softmax outputs), and a
    batch of at least ``PROBABILITY_CHECK_MIN`` values that all lie in [0, 1] (sigmoid outputs).
    """
    if not logits.is_floating_point():
        raise loss.input_error("logits", "a floating-point tensor", logits.dtype)
    if not logits.numel() or not loss.check_values(logits):
        return
    detached = logits.detach()
    low, high = torch.aminmax(detached)  # one pass, no temporaries: most batches of logits leave [0, 1] at once
    if bool(low < 0) or bool(high > 1):
        return
    rows_sum_to_one = (
        logits.ndim >= 2
        and logits.shape[1] > 1
        and bool(torch.allclose(detached.sum(1).float(), torch.ones((), device=logits.device), atol=1e-3))
    )
    if rows_sum_to_one:
        warnings.warn(
            f"loss '{loss.name}': logits look like probabilities (each row is in [0, 1] and sums to 1); "
            "pass raw scores, not softmax outputs",
            stacklevel=3,
        )
    elif logits.numel() >= PROBABILITY_CHECK_MIN:
        warnings.warn(
            f"loss '{loss.name}': logits look like probabilities (all {logits.numel()} values are in [0, 1]); "
            "pass raw scores, not sigmoid outputs",
            stacklevel=3,
        )


def is_zero_one(target: Tensor) -> bool:
    """Whether integer labels are all 0 or 1 (one pass, no temporaries)."""
    if not target.numel():
        return True
    low, high = torch.aminmax(target)
    return bool(low >= 0) and bool(high <= 1)


def check_class_logits(loss: Loss, logits: Tensor) -> None:
    """Scores for class-index targets need a class dimension of at least two columns."""
    if logits.ndim < 2:
        raise loss.input_error(
            "logits", "scores of shape [N, C] (for one binary logit per sample use bce_logits)", tuple(logits.shape)
        )
    if logits.shape[1] < 2:
        raise loss.input_error(
            "logits",
            "scores of at least 2 classes: with one column the softmax is 1 and the loss a constant 0 "
            "(for one binary logit per sample use bce_logits)",
            tuple(logits.shape),
        )


def check_probabilities(loss: Loss, target: Tensor, need_sum_one: bool) -> None:
    """Float targets must lie in [0, 1] (e.g. not -1/+1 labels); class-probability rows should sum to 1."""
    if not target.numel() or not loss.check_values(target):
        return
    low, high = (float(v) for v in torch.aminmax(target.detach()))
    if low < 0 or high > 1:
        raise loss.input_error(
            "target",
            "probabilities or 0/1 labels in [0, 1] (for -1/+1 labels pass (target + 1) / 2, or use the hinge loss)",
            f"values from {low:g} to {high:g}",
        )
    if need_sum_one and target.ndim >= 2:
        sums = target.detach().sum(1).float()
        if not bool(torch.allclose(sums, torch.ones((), device=target.device), atol=1e-3)):
            warnings.warn(
                f"loss '{loss.name}': probability targets should sum to 1 over the classes (got row sums from "
                f"{float(sums.min()):g} to {float(sums.max()):g}); for multi-label 0/1 targets use bce_logits",
                stacklevel=3,
            )


def check_class_indices(loss: Loss, logits: Tensor, target: Tensor, ignore_index: int | None = None) -> Tensor:
    """Integer targets must be class indices in [0, C) (or ``ignore_index``), shaped like the batch.

    Returns them as int64, the dtype torch's losses index with (int32 or uint8 labels are accepted).
    """
    num_classes = logits.shape[1]
    if target.is_floating_point() or target.dtype == torch.bool or target.is_complex():
        raise loss.input_error("target", "integer class indices", target.dtype)
    batch_shape = logits.shape[:1] + logits.shape[2:]
    if target.shape != batch_shape:
        one_hot = target.shape == logits.shape and loss.check_values(target) and is_zero_one(target)
        hint = "; it looks one-hot: pass target.argmax(1), or float probabilities" if one_hot else ""
        raise loss.input_error("target", f"class indices of shape {tuple(batch_shape)}{hint}", tuple(target.shape))
    if not loss.check_values(target):
        return target.long()
    valid = target if ignore_index is None else target[target != ignore_index]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= num_classes):
        raise loss.input_error(
            "target",
            f"class indices in [0, {num_classes - 1}]",
            f"values from {int(valid.min())} to {int(valid.max())}",
        )
    return target.long()


@register("ce", kind="classification")
class CrossEntropy(Loss):
    """Softmax cross-entropy ``-sum_c q_c log softmax(z)_c`` with optional label smoothing.

    Matches ``torch.nn.CrossEntropyLoss``; targets are class indices or class probabilities.
    The default classification loss.
    """

    not_searched = {"weight": "one weight per class", "label_smoothing": "the label_smoothing loss searches it; ce: the baseline"}

    def __init__(
        self,
        weight: Sequence[float] | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.register_buffer(
            "weight", _optional_vector(self, "weight", weight, positive=False, all_zero=ZERO_WEIGHTS_NAN), persistent=False
        )
        self.check(isinstance(ignore_index, int), "ignore_index must be an integer", ignore_index)
        self.ignore_index = ignore_index
        self.label_smoothing = self.check_number("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)

    def check_classes(self, classes: ClassScores) -> None:
        check_class_vector(self, "weight", self.weight, classes)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        check_logits(self, logits)
        check_class_logits(self, logits)
        if self.weight is not None and self.weight.numel() != logits.shape[1]:
            raise self.input_error("logits", f"{self.weight.numel()} classes to match weight", logits.shape[1])
        if target.is_floating_point():
            if target.shape != logits.shape:
                raise self.input_error(
                    "target", f"class indices or probabilities of shape {tuple(logits.shape)}", tuple(target.shape)
                )
            check_probabilities(self, target, need_sum_one=True)
        else:
            target = check_class_indices(self, logits, target, self.ignore_index)
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

    search_space = {"label_smoothing": (0.0, 0.3)}

    citations = ("Szegedy et al. 2016", "Müller et al. 2019")

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

    search_space = {"gamma": (0.0, 5.0), "alpha": (0.1, 0.9)}

    citations = ("Lin et al. 2017",)
    target_format = "binary"

    def __init__(self, gamma: float = 2.0, alpha: float | Sequence[float] | None = 0.25, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.gamma = self.check_number("gamma", gamma, 0.0)
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
            self.check_number("alpha", alpha, high=1.0)
            alpha = None if alpha < 0 else float(alpha)
        vector = None
        if alpha is not None and not isinstance(alpha, float):
            vector, alpha = _optional_vector(self, "alpha", alpha, positive=False, all_zero=ZERO_WEIGHTS_NOTHING), None
        self.register_buffer("alpha_vector", vector, persistent=False)
        self.alpha = alpha

    def check_classes(self, classes: ClassScores) -> None:
        if self.alpha_vector is not None and classes.target_format == "binary":
            self.check(
                False,
                f"alpha must be one number in [0, 1] for 0/1 targets ({classes.source}); one alpha per class "
                "needs class-index targets (softmax focal)",
                [float(f"{v:.6g}") for v in self.alpha_vector.tolist()],
            )
        check_class_vector(self, "alpha", self.alpha_vector, classes)

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
                check_probabilities(self, target, need_sum_one=False)
                return self.reduce(sigmoid_focal(logits, target.to(logits.dtype), self.gamma, self.alpha))
            check_class_logits(self, logits)
            target = check_class_indices(self, logits, target)
            alpha = self.alpha_vector if self.alpha_vector is not None else self.alpha
            if isinstance(alpha, Tensor) and alpha.numel() != logits.shape[1]:
                raise self.input_error("logits", f"{alpha.numel()} classes to match alpha", logits.shape[1])
            return self.reduce(softmax_focal(logits, target, self.gamma, alpha))


@register("bce_logits", kind="classification")
class BCEWithLogits(Loss):
    """Binary cross-entropy on logits, ``torch.nn.BCEWithLogitsLoss``; one independent sigmoid per class.

    ``weight`` rescales every element (or every class); ``pos_weight`` rescales only the positive term,
    to trade recall for precision on imbalanced labels. Class indices become one-hot targets.
    A per-class vector applies along dim 1 (the class dimension) for logits of any rank.
    """

    not_searched = {"weight": "one weight per class", "pos_weight": "one weight per class, from the class counts"}

    target_format = "binary"

    def __init__(
        self,
        weight: Sequence[float] | float | None = None,
        pos_weight: Sequence[float] | float | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.register_buffer(
            "weight", _optional_vector(self, "weight", weight, positive=False, all_zero=ZERO_WEIGHTS_NOTHING), persistent=False
        )
        self.register_buffer("pos_weight", _optional_vector(self, "pos_weight", pos_weight, positive=True), persistent=False)

    def check_classes(self, classes: ClassScores) -> None:
        for arg, vector in (("weight", self.weight), ("pos_weight", self.pos_weight)):
            if vector is not None and vector.numel() > 1:  # one number applies to every class
                check_class_vector(self, arg, vector, classes)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        check_logits(self, logits)
        if not target.is_floating_point():
            if logits.ndim >= 2 and target.shape == logits.shape[:1] + logits.shape[2:]:
                target = check_class_indices(self, logits, target)
                target = F.one_hot(target, logits.shape[1]).movedim(-1, 1)
            elif target.shape == logits.shape and (
                target.dtype == torch.bool or not self.check_values(target) or is_zero_one(target)
            ):
                pass
            else:
                raise self.input_error(
                    "target", f"0/1 labels of shape {tuple(logits.shape)} or class indices", tuple(target.shape)
                )
        elif target.shape != logits.shape:
            raise self.input_error("target", f"probabilities of shape {tuple(logits.shape)}", tuple(target.shape))
        else:
            check_probabilities(self, target, need_sum_one=False)
        with autocast_off(logits):
            logits = as_float(logits)
            target = target.to(logits.dtype)
            return F.binary_cross_entropy_with_logits(
                logits,
                target,
                weight=self.per_class("weight", self.weight, logits),
                pos_weight=self.per_class("pos_weight", self.pos_weight, logits),
                reduction=self.reduction,  # torch's none/mean/sum are ours, and fused
            )

    def per_class(self, arg: str, vector: Tensor | None, logits: Tensor) -> Tensor | None:
        """A scalar, or one value per class laid along dim 1 (torch would broadcast it over the last dim)."""
        if vector is None or vector.numel() == 1:
            return None if vector is None else vector.to(logits.dtype)
        classes = logits.shape[1] if logits.ndim >= 2 else 1
        if vector.numel() != classes:
            raise self.input_error(
                "logits",
                f"{vector.numel()} classes along dim 1 to match {arg} (one value per class, not per sample)",
                tuple(logits.shape),
            )
        return vector.to(logits.dtype).view(-1, *([1] * (logits.ndim - 2)))


def class_balanced_weights(counts: Tensor, beta: float) -> Tensor:
    """Cui et al. 2019: ``w_c = (1 - beta) / (1 - beta^n_c)``, normalised so that ``sum_c w_c = C``.

    ``1 - beta^n`` is computed as ``-expm1(n log beta)``, accurate for beta near 1; beta = 0 gives 1s.
    """
    counts = counts.double()
    if beta == 0.0:
        weights = torch.ones_like(counts)
    else:
        weights = (1.0 - beta) / -torch.expm1(counts * math.log(beta))
    return weights * (counts.numel() / weights.sum())


@register("class_balanced", kind="classification")
class ClassBalanced(Loss):
    """Class-balanced loss ``w_y * L(z, y)``, ``w_c`` proportional to ``(1 - beta) / (1 - beta^n_c)`` and summing to C.

    Cui et al. 2019 (effective number of samples), on softmax cross-entropy or softmax focal (``base``, ``gamma``).
    For long-tailed labels: beta = 0 is plain L, beta -> 1 weights by inverse class frequency.
    """

    search_space = {"beta": (0.9, 0.9999)}  # Cui et al. 2019 try 0.9 to 0.9999
    not_searched = {"gamma": "read by base=focal only", "samples_per_class": "counted from the training labels"}

    citations = ("Cui et al. 2019",)

    def __init__(
        self,
        beta: float = 0.999,
        samples_per_class: Sequence[float] | None = None,
        base: str = "ce",
        gamma: float = 2.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.beta = self.check_number("beta", beta, 0.0, 1.0, high_open=True)
        self.check(base in ("ce", "focal"), "base must be one of ce, focal", base)
        self.base = base
        self.gamma = self.check_number("gamma", gamma, 0.0)
        self.register_buffer("class_weight", None, persistent=False)
        self.samples_per_class: list[float] | None = None
        self.counts_from_data = samples_per_class is None
        if samples_per_class is not None:
            self.check(
                isinstance(samples_per_class, Sequence) and not isinstance(samples_per_class, str),
                "samples_per_class must be a list of counts, one per class, or null (counted from the training data)",
                samples_per_class,
            )
            self.check(len(samples_per_class) >= 2, "samples_per_class must give at least 2 classes", samples_per_class)
            for n in samples_per_class:
                self.check_number("samples_per_class", n)
            self.check(
                all(n > 0 for n in samples_per_class),
                "every samples_per_class must be > 0 (a class without samples would get an infinite weight)",
                list(samples_per_class),
            )
            self.set_class_counts(samples_per_class)

    def check_classes(self, classes: ClassScores) -> None:
        self.check(
            classes.target_format == "indices",
            f"targets must be class indices ({classes.source})",
            "0/1 targets",
        )
        if self.samples_per_class is not None:
            check_class_vector(self, "samples_per_class", torch.tensor(self.samples_per_class), classes)

    def set_class_counts(self, counts: Sequence[float] | Tensor) -> None:
        """Set the number of training samples of each class and recompute the class weights.

        ``ClassificationTask`` calls this in ``setup`` with the training labels' counts when
        ``samples_per_class`` is null. Every count must be > 0.
        """
        counts = torch.as_tensor(counts, dtype=torch.float64).flatten().cpu()
        if counts.numel() < 2 or not bool(torch.isfinite(counts).all()):
            raise ValueError(f"loss '{self.name}': class counts must be finite, at least 2 of them (got {counts.tolist()})")
        empty = (counts <= 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"loss '{self.name}': classes {empty} have no training samples, so their weight "
                f"(1 - beta) / (1 - beta^0) is infinite (counts {counts.tolist()}); "
                "set loss.samples_per_class by hand or drop those classes"
            )
        device = self.class_weight.device if self.class_weight is not None else torch.device("cpu")
        self.class_weight = class_balanced_weights(counts, self.beta).float().to(device)
        self.samples_per_class = counts.tolist()

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        check_logits(self, logits)
        if self.class_weight is None:
            raise RuntimeError(
                f"loss '{self.name}': no class counts yet: samples_per_class is null and set_class_counts(counts) "
                "was not called; give loss.samples_per_class in the config, or train through a task that "
                "counts the training labels (ClassificationTask does)"
            )
        check_class_logits(self, logits)
        if logits.shape[1] != self.class_weight.numel():
            raise self.input_error("logits", f"{self.class_weight.numel()} classes to match samples_per_class", logits.shape[1])
        target = check_class_indices(self, logits, target)
        with autocast_off(logits):
            logits = as_float(logits)
            weight = self.class_weight.to(device=logits.device, dtype=logits.dtype)
            if self.base == "focal":
                values = softmax_focal(logits, target, self.gamma, weight)
            else:
                values = F.cross_entropy(logits, target, weight=weight, reduction="none")  # weight[y] * CE per sample
            return self.reduce(values)


@register("hinge", kind="classification")
class Hinge(Loss):
    """Binary ``max(0, margin - y s)^p``, y in {-1, +1} (0/1 labels are mapped); multi-class
    ``sum_{i != y} max(0, margin - s_y + s_i)^p / C`` as ``torch.nn.MultiMarginLoss``.
    The SVM loss: for max-margin classifiers; examples beyond the margin give no gradient.
    """

    search_space = {"margin": (0.1, 2.0)}

    def __init__(self, margin: float = 1.0, p: int = 1, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = self.check_number("margin", margin, 0.0)
        self.check(p in (1, 2) and not isinstance(p, bool), "p must be 1 or 2 (as torch's MultiMarginLoss)", p)
        self.p = int(p)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        check_logits(self, logits)
        single_column = logits.ndim == 2 and logits.shape[1] == 1 and target.shape == logits.shape[:1]
        if target.shape == logits.shape or single_column:
            signs = self.signs(target)
            with autocast_off(logits):
                scores = as_float(logits).flatten() if single_column else as_float(logits)
                values = (self.margin - signs.to(scores.dtype) * scores).clamp_min(0)
                return self.reduce(values if self.p == 1 else values**self.p)
        if logits.ndim != 2:
            raise self.input_error(
                "logits", "scores [N] with labels [N], or [N, C] with class indices [N] or labels [N, C]", tuple(logits.shape)
            )
        target = check_class_indices(self, logits, target)
        with autocast_off(logits):
            logits = as_float(logits)
            return F.multi_margin_loss(logits, target, p=self.p, margin=self.margin, reduction=self.reduction)

    def signs(self, target: Tensor) -> Tensor:
        """Binary labels as -1/+1: labels in {-1, +1} stay, labels in {0, 1} map 0 to -1.

        Where values are checked (always on CPU) the encoding is read from the smallest label; elsewhere
        ``where(target == 0, -1, target)`` does both without a host sync.
        """
        target = target.long() if target.dtype == torch.bool else target
        if not target.numel() or not self.check_values(target):
            return torch.where(target == 0, -1, target)
        low, high = (float(v) for v in torch.aminmax(target))
        if low < -1 or high > 1 or (target.is_floating_point() and not torch.equal(target, target.round())):
            raise self.input_error("target", "binary labels in {-1, +1} or {0, 1}", f"values from {low:g} to {high:g}")
        if low == -1:
            if bool((target == 0).any()):
                raise self.input_error("target", "binary labels in {-1, +1} or {0, 1}, not a mix", "both -1 and 0")
            return target
        return 2 * target - 1
