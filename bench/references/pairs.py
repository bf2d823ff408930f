"""References for the pair and triplet losses: torch's functions, and Hadsell et al.'s formula by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.references.common import reduce_reference


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
