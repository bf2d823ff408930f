"""Reference cases for the two-view losses: inputs, and the references in ``bench/references/views.py``."""

from __future__ import annotations

from bench.references.views import simclr_nt_xent, torch_info_nce
from tests.losses.conformance import Case, randn

N, D = 8, 5


def views(g, dtype):
    """Two views of N items: a shared signal plus view noise, so positives are more alike than negatives."""
    base = randn(g, dtype, N, D)
    return base + randn(g, dtype, N, D, scale=0.6), base + randn(g, dtype, N, D, scale=0.6)


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
