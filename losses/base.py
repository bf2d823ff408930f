"""What every loss shares: hyperparameter checks, float32 computation under autocast, reduction."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from losses.errors import check, check_number

REDUCTIONS = ("none", "mean", "sum")
# the smallest temperature a loss or a task divides scores by. Dividing by T magnifies float32's rounding of a
# score (6e-8 of its size) by 1/T: at T = 1e-4 a logit of 10 becomes 1e5, still exact to 0.01 nat; at 1e-6 it is
# rounded to whole nats, and at 1e-30 scores overflow float32 or, squared as distillation's T^2, underflow to 0.
# 1e-4 is 100x below the smallest temperature of common recipes (CLIP clamps its learnt one at 0.01, Radford et al. 2021).
MIN_TEMPERATURE = 1e-4
# value checks (index ranges, probabilities passed as logits) read tensors back to the host, a sync that stalls an
# accelerator and costs a pass over the data on any device: they run on the first VALUE_CHECK_CALLS calls of each
# loss, which covers Lightning's two sanity-check batches and the first six training steps. The debug configs set
# the variable below to ``always`` (check every call); a number sets the count.
VALUE_CHECK_CALLS = 8
VALUE_CHECKS_ENV = "LOSS_RECIPES_CHECK_VALUES"


def value_check_calls() -> float:
    """How many calls of a loss check their inputs' values: ``$LOSS_RECIPES_CHECK_VALUES`` (a number, or ``always``)."""
    setting = os.environ.get(VALUE_CHECKS_ENV, "").strip().lower()
    if setting in ("always", "true", "debug"):
        return math.inf
    if setting.isdigit():
        return int(setting)
    check(
        f"${VALUE_CHECKS_ENV}",
        not setting,
        f"must be a number of calls or 'always' (unset it for the default, {VALUE_CHECK_CALLS})",
        setting,
    )
    return VALUE_CHECK_CALLS


class TargetNeed(NamedTuple):
    """What a loss needs of every target: ``holds(target)`` is true elementwise; ``need`` says it in words."""

    holds: Callable[[Tensor], Tensor]
    need: str


class ClassScores(NamedTuple):
    """What a task's slot gives its classification loss: ``count`` scores per sample, targets of ``target_format``
    ("indices": a class index per sample; "binary": 0/1 floats of the scores' shape), and ``source``, in words,
    where the count comes from (``task.num_classes``)."""

    count: int
    target_format: str
    source: str


class Loss(nn.Module):
    """Base of every registered loss: holds ``reduction`` and the helpers losses share.

    ``terms`` holds the named parts of the last value computed (e.g. reconstruction and KL),
    detached, so that tasks can log them without knowing the loss. The declarations below say
    what tasks and docs need to know of a loss, so that neither looks a loss up by its name.
    """

    name: ClassVar[str] = "loss"
    kind: ClassVar[str] = ""
    reductions: ClassVar[tuple[str, ...]] = REDUCTIONS
    # the papers it comes from, as docs/losses.md prints them: ("Lin et al. 2017",)
    citations: ClassVar[tuple[str, ...]] = ()
    # classification: the targets it is made for, "indices" (a class index per row: softmax scores) or
    # "binary" (float 0/1 targets of the logits' shape: one sigmoid per class)
    target_format: ClassVar[str] = "indices"
    # regression: what the network outputs for it, "point" (the prediction), "log1p" (log(1 + prediction)),
    # "log_rate" or "rate" (Poisson), "mean_variance" (a mean and a variance), "quantiles" (one per ``taus``)
    head: str = "point"
    # what it needs of the training targets (checked by the task before training), None: anything
    target_need: ClassVar[TargetNeed | None] = None
    # whether the task passes it the training data's class counts, through ``set_class_counts(counts)``
    counts_from_data: bool = False
    # the range a search explores for each hyperparameter, inside what ``__init__`` accepts: ``{"gamma": (0.0, 5.0)}``,
    # ``(low, high, "log")`` on a log scale; the number hyperparameters a search leaves alone, each with the reason
    # (merged over the base classes: see ``losses.search``)
    search_space: ClassVar[dict[str, tuple]] = {}
    not_searched: ClassVar[dict[str, str]] = {"eps": "a numerical guard, not a modelling choice"}

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.value_check_calls = value_check_calls()  # see VALUE_CHECK_CALLS
        self._calls = 0  # calls so far, counted up to value_check_calls + 1
        self.check(reduction in self.reductions, f"reduction must be one of {', '.join(self.reductions)}", reduction)
        self.reduction = reduction
        self.terms: dict[str, Tensor] = {}

    # ----- validation -------------------------------------------------------------------------
    def check(self, ok: bool, need: str, got: object) -> None:
        """Raise the house-style ConfigError ``loss 'name': need (got value)`` unless ``ok``."""
        check(f"loss '{self.name}'", ok, need, got)

    def check_number(
        self,
        arg: str,
        value: float,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> float:
        """Check that hyperparameter ``arg`` is a finite number inside the given bounds."""
        return check_number(f"loss '{self.name}'", arg, value, low, high, low_open, high_open)

    def check_classes(self, classes: ClassScores) -> None:
        """Refuse per-class hyperparameters that do not fit the scores a task gives (checked before data loads).

        Nothing to check by default; losses holding one value per class (weights, counts) override it.
        """

    def input_error(self, arg: str, need: str, got: object) -> ValueError:
        """An error for a bad tensor passed to forward, naming the loss and the argument."""
        return ValueError(f"loss '{self.name}': {arg} must be {need} (got {got})")

    def __call__(self, *args, **kwargs):
        """Count the call (for ``check_values``), then run ``forward`` as every module does."""
        if self._calls <= self.value_check_calls and not torch.compiler.is_compiling():
            self._calls += 1
        return super().__call__(*args, **kwargs)

    def check_values(self, tensor: Tensor | None = None) -> bool:
        """Whether this call runs the value checks that read ``tensor`` back to the host: the first calls only."""
        return self._calls <= self.value_check_calls and not torch.compiler.is_compiling()

    # ----- computation ------------------------------------------------------------------------
    def reduce(self, values: Tensor, reduction: str | None = None) -> Tensor:
        """Apply ``reduction`` (default: the loss's own) to per-element or per-sample values."""
        return reduce(values, reduction or self.reduction)


def reduce(values: Tensor, reduction: str) -> Tensor:
    """The one reduction every loss goes through: ``none`` keeps the shape, else mean or sum."""
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.mean()
    if reduction == "batchmean":
        return values.sum() / max(values.shape[0], 1) if values.ndim else values
    raise ValueError(f"unknown reduction {reduction!r}")


def reduction_divisor(values: Tensor, reduction: str) -> int:
    """What ``reduce`` divides the sum of ``values`` by (at least 1; 1 for sum and none), for gradients written by hand."""
    if reduction == "mean":
        return max(values.numel(), 1)
    return max(values.shape[0], 1) if reduction == "batchmean" and values.ndim else 1


def autocast_off(*tensors: Tensor) -> contextlib.AbstractContextManager:
    """Disable autocast on the devices of ``tensors``, so a loss computes in its inputs' dtype.

    Tensors on one device type (the usual case) get one ``torch.autocast``, which torch.compile traces.
    """
    device_types = {t.device.type for t in tensors if isinstance(t, Tensor)} or {"cpu"}
    if len(device_types) == 1:
        return torch.autocast(device_type=device_types.pop(), enabled=False)
    return autocast_off_on(device_types)


@contextlib.contextmanager
def autocast_off_on(device_types: set[str]) -> Iterator[None]:
    """Disable autocast on each of ``device_types``."""
    with contextlib.ExitStack() as stack:
        for device_type in device_types:
            stack.enter_context(torch.autocast(device_type=device_type, enabled=False))
        yield


def as_float(t: Tensor) -> Tensor:
    """Half and bfloat16 tensors become float32; float32 and float64 stay as they are."""
    return t.float() if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64) else t
