"""Metric-learning losses on pairs (``forward(emb1, emb2, y)``) and triplets (``forward(anchor, positive, negative)``).

Each loss also says which dissimilarity it shapes (``distance(a, b)``: Euclidean, p-norm or cosine
distance), so a verification task scores pairs with the same measure the loss trained.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, as_float, autocast_off
from losses.registry import register


def euclidean(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise ``||a - b||_2``, torch's fused norm; its gradient is 0 (finite) where ``a == b``."""
    return torch.linalg.vector_norm(a - b, dim=-1)


def cosine(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise cosine similarity ``a.b / (max(|a|, eps) max(|b|, eps))``, as ``F.cosine_similarity``."""
    return (a * b).sum(-1) / (norm(a, eps) * norm(b, eps))


def norm(a: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise ``max(|a|, eps)``, the denominator of a cosine."""
    return torch.linalg.vector_norm(a, dim=-1).clamp_min(eps)


def check_embeddings(loss: Loss, **named: Tensor) -> None:
    """Embeddings are floating-point ``[N, D]`` tensors of one shape, N >= 1."""
    shape = None
    for arg, x in named.items():
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise loss.input_error(arg, "a floating-point tensor", getattr(x, "dtype", type(x).__name__))
        if x.ndim != 2 or x.shape[0] == 0:
            raise loss.input_error(arg, "embeddings of shape [N, D] with N >= 1", tuple(x.shape))
        if shape is not None and x.shape != shape:
            first = next(iter(named))
            raise loss.input_error(arg, f"of the same shape as {first} {tuple(shape)}", tuple(x.shape))
        shape = x.shape


def check_pair_labels(loss: Loss, y: Tensor, n: int) -> None:
    """Pair labels are ``[N]`` values in {+1 (similar), -1 (dissimilar)}; 0/1 labels are refused.

    The value check reads back to the host, so off the CPU it runs on the first calls only (``check_values``).
    """
    if not isinstance(y, Tensor) or y.shape != (n,):
        raise loss.input_error("y", f"a tensor of shape ({n},) matching the embeddings", tuple(getattr(y, "shape", ())))
    if y.dtype == torch.bool or (loss.check_values(y) and not bool(((y == 1) | (y == -1)).all())):
        values = sorted({float(v) for v in y.unique().tolist()}) if y.dtype != torch.bool else "booleans"
        raise loss.input_error("y", "+1 (similar) or -1 (dissimilar); map 0/1 labels with y = 2 * label - 1", values)


class PairLoss(Loss):
    """A loss on ``(emb1, emb2, y)``: checks, float32 computation and reduction; subclasses give ``values``."""

    distance_name: ClassVar[str] = "euclidean"

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """The dissimilarity this loss shapes, row by row (what a verification task thresholds)."""
        return euclidean(a, b)

    def values(self, emb1: Tensor, emb2: Tensor, similar: Tensor) -> Tensor:
        raise NotImplementedError

    def compute(self, emb1: Tensor, emb2: Tensor, y: Tensor) -> Tensor:
        """The reduced loss of float embeddings and labels y in {+1, -1}; losses torch has override it."""
        return self.reduce(self.values(emb1, emb2, (y == 1).to(emb1.device)))

    def forward(self, emb1: Tensor, emb2: Tensor, y: Tensor) -> Tensor:
        check_embeddings(self, emb1=emb1, emb2=emb2)
        check_pair_labels(self, y, emb1.shape[0])
        with autocast_off(emb1, emb2):
            return self.compute(as_float(emb1), as_float(emb2), y)


@register("hinge_embedding", kind="pair")
class HingeEmbedding(PairLoss):
    """``d`` for similar pairs, ``max(0, margin - d)`` for dissimilar ones, d the Euclidean distance.

    ``torch.nn.HingeEmbeddingLoss`` applied to ``||emb1 - emb2||``: pulls similar pairs together linearly,
    pushes dissimilar pairs out to ``margin``. Simple verification baseline.
    """

    search_space = {"margin": (0.1, 2.0)}

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = self.check_number("margin", margin, 0.0, low_open=True)

    def values(self, emb1: Tensor, emb2: Tensor, similar: Tensor) -> Tensor:
        d = euclidean(emb1, emb2)
        return torch.where(similar, d, (self.margin - d).clamp_min(0))


@register("cosine_embedding", kind="pair")
class CosineEmbedding(PairLoss):
    """``1 - cos`` for similar pairs, ``max(0, cos - margin)`` for dissimilar ones.

    As ``torch.nn.CosineEmbeddingLoss`` (margin in [-1, 1], 0 to 0.5 advised); for embeddings whose
    direction, not length, carries identity (face/speaker verification with cosine scoring).
    """

    search_space = {"margin": (0.0, 0.5)}  # torch advises 0 to 0.5

    distance_name: ClassVar[str] = "cosine"

    def __init__(self, margin: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = self.check_number("margin", margin, -1.0, 1.0)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        return 1 - cosine(a, b)

    def compute(self, emb1: Tensor, emb2: Tensor, y: Tensor) -> Tensor:
        y = y.to(device=emb1.device, dtype=emb1.dtype)
        return F.cosine_embedding_loss(emb1, emb2, y, margin=self.margin, reduction=self.reduction)


@register("contrastive", kind="pair")
class Contrastive(PairLoss):
    """``d^2 / 2`` for similar pairs, ``max(0, margin - d)^2 / 2`` for dissimilar ones (Euclidean d).

    The contrastive loss of Hadsell, Chopra and LeCun 2006 (CVPR, eq. 4); the classic Siamese-network
    loss: smooth pull, and a push that fades out at the margin.
    """

    search_space = {"margin": (0.1, 2.0)}

    citations = ("Hadsell, Chopra and LeCun 2006",)

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = self.check_number("margin", margin, 0.0, low_open=True)

    def values(self, emb1: Tensor, emb2: Tensor, similar: Tensor) -> Tensor:
        d = euclidean(emb1, emb2)
        return 0.5 * torch.where(similar, d, (self.margin - d).clamp_min(0)).square()


class TripletLoss(Loss):
    """A loss on ``(anchor, positive, negative)``; ``terms['active']`` is the share of triplets with a loss > 0."""

    distance_name: ClassVar[str] = "euclidean"

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        return euclidean(a, b)

    def values(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        check_embeddings(self, anchor=anchor, positive=positive, negative=negative)
        with autocast_off(anchor, positive, negative):
            values = self.values(as_float(anchor), as_float(positive), as_float(negative))
        self.terms = {"active": (values > 0).float().mean().detach()}
        return self.reduce(values)


@register("triplet", kind="triplet")
class Triplet(TripletLoss):
    """``max(0, d(a, p) - d(a, n) + margin)`` with the p-norm distance (Schroff et al. 2015, FaceNet).

    As ``torch.nn.TripletMarginLoss`` (eps 1e-6 inside the distance; ``swap`` uses ``min(d(a, n), d(p, n))``,
    Balntas et al. 2016). The default metric-learning loss on triplets.
    """

    search_space = {"margin": (0.1, 2.0)}
    not_searched = {"p": "the norm of the distance: a choice of metric, not a scale"}

    citations = ("Schroff et al. 2015", "Balntas et al. 2016")
    EPS: ClassVar[float] = 1e-6  # torch's default, added to the difference inside the norm

    def __init__(self, margin: float = 1.0, p: float = 2.0, swap: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = self.check_number("margin", margin, 0.0)
        self.p = self.check_number("p", p, 1.0)
        self.check(isinstance(swap, bool), "swap must be true or false", swap)
        self.swap = swap
        self.distance_name = "euclidean" if self.p == 2 else f"p{self.p:g}"

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        return F.pairwise_distance(a, b, p=self.p, eps=self.EPS)

    def values(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        d_ap = self.distance(anchor, positive)
        d_an = self.distance(anchor, negative)
        if self.swap:
            d_an = torch.minimum(d_an, self.distance(positive, negative))
        return (self.margin + d_ap - d_an).clamp_min(0)


@register("margin_ranking", kind="triplet")
class MarginRanking(TripletLoss):
    """``max(0, margin - (s(a, p) - s(a, n)))`` with s the cosine similarity.

    ``torch.nn.MarginRankingLoss`` on ``(s(a, p), s(a, n), y=+1)``: the positive must out-rank the negative
    by ``margin`` (in [0, 2]); a scale-free alternative to ``triplet``, scored by cosine distance.
    """

    search_space = {"margin": (0.05, 1.0)}

    distance_name: ClassVar[str] = "cosine"

    def __init__(self, margin: float = 0.2, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = self.check_number("margin", margin, 0.0, 2.0)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        return 1 - cosine(a, b)

    def values(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        # cos(a, p) - cos(a, n) with the anchor's norm taken once
        gap = (anchor * positive).sum(-1) / norm(positive) - (anchor * negative).sum(-1) / norm(negative)
        return (self.margin - gap / norm(anchor)).clamp_min(0)
