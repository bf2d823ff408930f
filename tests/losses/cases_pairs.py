"""Reference cases for the pair and triplet losses: torch's functions, and Hadsell et al.'s formula by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.losses.conformance import Case, randn, reduce_reference

N, D = 10, 6


def pairs(g, dtype):
    """Embedding pairs with distances spread around the margins, and labels in {+1, -1}."""
    emb1 = randn(g, dtype, N, D)
    emb2 = emb1 + randn(g, dtype, N, D, scale=0.5)
    y = torch.where(torch.rand(N, generator=g) < 0.5, 1, -1)
    return emb1, emb2, y


def triplets(g, dtype):
    anchor = randn(g, dtype, N, D)
    return anchor, anchor + randn(g, dtype, N, D, scale=0.7), anchor + randn(g, dtype, N, D, scale=0.9)


def torch_hinge_embedding(emb1, emb2, y, reduction, margin=1.0):
    distance = torch.linalg.vector_norm(emb1 - emb2, dim=1)
    return F.hinge_embedding_loss(distance, y.to(distance.dtype), margin=margin, reduction=reduction)


def torch_cosine_embedding(emb1, emb2, y, reduction, margin=0.0):
    return F.cosine_embedding_loss(emb1, emb2, y.to(emb1.dtype), margin=margin, reduction=reduction)


def hadsell_contrastive(emb1, emb2, y, reduction, margin=1.0):
    """Hadsell et al. 2006, eq. 4, with their Y = 0 for similar pairs, 1 for dissimilar ones."""
    big_y = (y == -1).to(emb1.dtype)
    d = torch.sqrt(((emb1 - emb2) ** 2).sum(1))
    values = (1 - big_y) * 0.5 * d**2 + big_y * 0.5 * torch.clamp(margin - d, min=0) ** 2
    return reduce_reference(values, reduction)


def torch_triplet(anchor, positive, negative, reduction, margin=1.0, p=2.0, swap=False):
    return F.triplet_margin_loss(anchor, positive, negative, margin=margin, p=p, swap=swap, reduction=reduction)


def torch_margin_ranking(anchor, positive, negative, reduction, margin=0.2):
    def cos(a, b):
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))

    s_ap, s_an = cos(anchor, positive), cos(anchor, negative)
    return F.margin_ranking_loss(s_ap, s_an, torch.ones_like(s_ap), margin=margin, reduction=reduction)


PAIR_GRADS, TRIPLET_GRADS = (0, 1), (0, 1, 2)

CASES = {
    "hinge_embedding": [
        Case(pairs, torch_hinge_embedding, grad_inputs=PAIR_GRADS),
        Case(pairs, torch_hinge_embedding, hparams={"margin": 2.5}, grad_inputs=PAIR_GRADS, label="margin-2.5"),
    ],
    "cosine_embedding": [
        Case(pairs, torch_cosine_embedding, grad_inputs=PAIR_GRADS),
        Case(pairs, torch_cosine_embedding, hparams={"margin": 0.5}, grad_inputs=PAIR_GRADS, label="margin-0.5"),
        Case(pairs, torch_cosine_embedding, hparams={"margin": -0.3}, grad_inputs=PAIR_GRADS, label="margin-negative"),
    ],
    "contrastive": [
        Case(pairs, hadsell_contrastive, grad_inputs=PAIR_GRADS),
        Case(pairs, hadsell_contrastive, hparams={"margin": 3.0}, grad_inputs=PAIR_GRADS, label="margin-3"),
    ],
    "triplet": [
        Case(triplets, torch_triplet, grad_inputs=TRIPLET_GRADS),
        Case(
            triplets, torch_triplet, hparams={"margin": 0.5, "p": 1.0, "swap": True}, grad_inputs=TRIPLET_GRADS, label="p1-swap"
        ),
        Case(triplets, torch_triplet, hparams={"margin": 2.0, "p": 3.0}, grad_inputs=TRIPLET_GRADS, label="p3"),
    ],
    "margin_ranking": [
        Case(triplets, torch_margin_ranking, grad_inputs=TRIPLET_GRADS),
        Case(triplets, torch_margin_ranking, hparams={"margin": 0.0}, grad_inputs=TRIPLET_GRADS, label="margin-0"),
    ],
}
