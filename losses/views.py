"""Contrastive losses on two augmented views of a batch: ``forward(z1, z2)``.

Under ``torch.distributed`` (DDP), ``forward(z1, z2, gather=True)`` gathers the embeddings of every
rank, with gradients, so each anchor sees the negatives of the global batch; each rank's loss is the
mean over its own anchors, and DDP's gradient averaging then equals one process on the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from losses.base import MIN_TEMPERATURE, Loss, as_float, autocast_off
from losses.registry import register


def distributed() -> bool:
    """True when a process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class GatherWithGrad(torch.autograd.Function):
    """``all_gather`` along dim 0 of rows counted ``counts`` per rank; the backward sums the gradients
    every rank computed for the gathered rows and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: Tensor, counts: tuple[int, ...]) -> Tensor:
        rank = dist.get_rank()
        padded = x.new_zeros((max(counts), *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded)
        ctx.start, ctx.stop = sum(counts[:rank]), sum(counts[: rank + 1])
        return torch.cat([part[:n] for part, n in zip(parts, counts)])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop], None


def row_counts(x: Tensor) -> tuple[int, ...]:
    """The number of rows ``x`` has on every rank (ranks may differ, e.g. on a last, smaller batch)."""
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    return tuple(int(s) for s in sizes)


class ViewsLoss(Loss):
    """Shared by the two-view losses: the temperature, the input checks and the optional gather."""

    search_space = {"temperature": (0.03, 1.0, "log")}

    def __init__(self, temperature: float, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.temperature = self.check_number("temperature", temperature, 0.0, low_open=True)
        self.check(
            temperature >= MIN_TEMPERATURE,
            f"temperature must be >= {MIN_TEMPERATURE:g}: dividing by T magnifies float32's rounding of the "
            "similarities by 1/T, toward whole nats (SimCLR and CLIP use 0.01 to 1)",
            temperature,
        )

    def check_views(self, z1: Tensor, z2: Tensor) -> None:
        for arg, z in (("z1", z1), ("z2", z2)):
            if not isinstance(z, Tensor) or not z.is_floating_point():
                raise self.input_error(arg, "a floating-point tensor", getattr(z, "dtype", type(z).__name__))
            if z.ndim != 2 or z.shape[0] == 0:
                raise self.input_error(arg, "embeddings of shape [N, D] with N >= 1", tuple(z.shape))
        if z1.shape != z2.shape:
            raise self.input_error("z2", f"of the same shape as z1 {tuple(z1.shape)} (row i: a view of image i)", tuple(z2.shape))

    def across_ranks(self, gather: bool, *views: Tensor) -> tuple[list[Tensor], int]:
        """The rows of ``views`` on every rank when ``gather`` and distributed, and this rank's offset in them."""
        if not (gather and distributed()):
            return list(views), 0
        counts = row_counts(views[0])
        return [GatherWithGrad.apply(v, counts) for v in views], sum(counts[: dist.get_rank()])


@register("nt_xent", kind="views")
class NTXent(ViewsLoss):
    """``-log exp(s_ij / T) / sum_{k != i} exp(s_ik / T)`` over the 2N views, s the cosine similarity.

    The NT-Xent loss of SimCLR (Chen et al. 2020, eq. 1), averaged over all 2N anchors; both views
    serve as anchors. T = 0.5 is the temperature of SimCLR's CIFAR-10 recipe; 0.1 suits large batches.
    """

    citations = ("Chen et al. 2020",)

    def __init__(self, temperature: float = 0.5, reduction: str = "mean") -> None:
        super().__init__(temperature, reduction)

    def forward(self, z1: Tensor, z2: Tensor, gather: bool = False) -> Tensor:
        self.check_views(z1, z2)
        with autocast_off(z1, z2):
            z1, z2 = F.normalize(as_float(z1), dim=1), F.normalize(as_float(z2), dim=1)
            (k1, k2), offset = self.across_ranks(gather, z1, z2)
            n, total = z1.shape[0], k1.shape[0]
            if total < 2:
                raise self.input_error("z1", "a batch of at least 2 images (the others are the negatives)", total)
            anchors, keys = torch.cat([z1, z2]), torch.cat([k1, k2])
            logits = anchors @ keys.T / self.temperature
            own = torch.arange(n, device=z1.device) + offset
            rows = torch.arange(2 * n, device=z1.device)
            # an anchor is not its own negative
            logits = logits.index_put((rows, torch.cat([own, own + total])), logits.new_tensor(float("-inf")))
            positives = torch.cat([own + total, own])  # view 1 of image i pairs with view 2 of image i, and back
            values = F.cross_entropy(logits, positives, reduction="none")
        return self.reduce(values)


@register("info_nce", kind="views")
class InfoNCE(ViewsLoss):
    """``-log exp(s_ii / T) / sum_k exp(s_ik / T)``: z1_i must pick z2_i among every z2, s the cosine similarity.

    InfoNCE (van den Oord et al. 2018) with in-batch negatives, one direction (z1 -> z2), N terms;
    for asymmetric pairs (query and key encoders, image and caption) where nt_xent's symmetry is not wanted.
    """

    citations = ("van den Oord et al. 2018",)

    def __init__(self, temperature: float = 0.1, reduction: str = "mean") -> None:
        super().__init__(temperature, reduction)

    def forward(self, z1: Tensor, z2: Tensor, gather: bool = False) -> Tensor:
        self.check_views(z1, z2)
        with autocast_off(z1, z2):
            z1, z2 = F.normalize(as_float(z1), dim=1), F.normalize(as_float(z2), dim=1)
            (k2,), offset = self.across_ranks(gather, z2)
            if k2.shape[0] < 2:
                raise self.input_error("z1", "a batch of at least 2 images (the others are the negatives)", k2.shape[0])
            logits = z1 @ k2.T / self.temperature
            positives = torch.arange(z1.shape[0], device=z1.device) + offset
            values = F.cross_entropy(logits, positives, reduction="none")
        return self.reduce(values)
