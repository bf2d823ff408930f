"""Reference cases for the two-view losses: SimCLR's NT-Xent written out anchor by anchor, InfoNCE as torch's CE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tests.losses.conformance import Case, randn, reduce_reference

N, D = 8, 5


def views(g, dtype):
    """Two views of N items: a shared signal plus view noise, so positives are more alike than negatives."""
    base = randn(g, dtype, N, D)
    return base + randn(g, dtype, N, D, scale=0.6), base + randn(g, dtype, N, D, scale=0.6)


def simclr_nt_xent(z1, z2, reduction, temperature=0.5):
    """Chen et al. 2020, eq. 1: l(i, j) = -log exp(s_ij/T) / sum_{k != i} exp(s_ik/T), over the 2N anchors."""
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


def torch_info_nce(z1, z2, reduction, temperature=0.1):
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(z1)), reduction=reduction)


GRADS = (0, 1)

CASES = {
    "nt_xent": [
        Case(views, simclr_nt_xent, grad_inputs=GRADS),
        Case(views, simclr_nt_xent, hparams={"temperature": 0.1}, grad_inputs=GRADS, label="t-0.1"),
        Case(views, simclr_nt_xent, hparams={"temperature": 1.0}, grad_inputs=GRADS, label="t-1"),
    ],
    "info_nce": [
        Case(views, torch_info_nce, grad_inputs=GRADS),
        Case(views, torch_info_nce, hparams={"temperature": 0.5}, grad_inputs=GRADS, label="t-0.5"),
    ],
}
