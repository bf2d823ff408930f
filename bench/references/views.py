"""References for the two-view losses: SimCLR's NT-Xent written out anchor by anchor and as one matrix, InfoNCE as torch's CE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bench.references.common import reduce_reference


def simclr_nt_xent(z1, z2, reduction, temperature=0.5):
    """Chen et al. 2020, eq. 1: l(i, j) = -log exp(s_ij/T) / sum_{k != i} exp(s_ik/T), over the 2N anchors.

    In Python floats, one anchor at a time: the most literal check, but without a gradient and too slow to
    time; the benchmark uses ``nt_xent_matrix``, the same sum as one 2N x 2N matrix.
    """
    z = torch.cat([z1, z2])
    n2 = len(z)
    values = []
    for i in range(n2):
        j = (i + n2 // 2) % n2

        def s(a, b):
            return float(z[a] @ z[b] / (z[a].norm() * z[b].norm()))

        denominator = sum(math.exp(s(i, k) / temperature) for k in range(n2) if k != i)
        values.append(-(s(i, j) / temperature - math.log(denominator)))
    return reduce_reference(torch.tensor(values, dtype=z.dtype), reduction)


def nt_xent_matrix(z1, z2, reduction, temperature=0.5):
    """SimCLR: 2N x 2N cosine similarities over the temperature, self-pairs masked, CE on the other view."""
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target, reduction=reduction)


def torch_info_nce(z1, z2, reduction, temperature=0.1):
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(z1), device=z1.device), reduction=reduction)
