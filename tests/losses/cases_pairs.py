"""Reference cases for the pair and triplet losses: inputs, and the references in ``bench/references/pairs.py``."""

from __future__ import annotations

import torch

from bench.references.pairs import (
    hadsell_contrastive,
    torch_cosine_embedding,
    torch_hinge_embedding,
    torch_margin_ranking,
    torch_triplet,
)
from tests.losses.conformance import Case, randn

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
