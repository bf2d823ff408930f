"""Reference cases for the distribution losses: inputs, and the references in ``bench/references/distribution.py``."""

from __future__ import annotations

import torch.nn.functional as F

from bench.references.distribution import torch_js, torch_kl
from tests.losses.conformance import Case, randn

N, C = 12, 5
REDUCTIONS = ("none", "mean", "sum", "batchmean")


def log_probs_and_probs(g, dtype):
    return F.log_softmax(randn(g, dtype, N, C, scale=2.0), 1), F.softmax(randn(g, dtype, N, C, scale=2.0), 1)


def log_probs_and_log_probs(g, dtype):
    return F.log_softmax(randn(g, dtype, N, C, scale=2.0), 1), F.log_softmax(randn(g, dtype, N, C, scale=2.0), 1)


CASES = {
    "kl_div": [
        Case(log_probs_and_probs, torch_kl, grad_inputs=(0, 1), reductions=REDUCTIONS, label="forward"),
        Case(
            log_probs_and_log_probs,
            torch_kl,
            hparams={"log_target": True},
            grad_inputs=(0, 1),
            reductions=REDUCTIONS,
            label="forward-log-target",
        ),
        Case(
            log_probs_and_probs,
            torch_kl,
            hparams={"direction": "reverse"},
            grad_inputs=(0, 1),
            reductions=REDUCTIONS,
            label="reverse",
        ),
        Case(
            log_probs_and_log_probs,
            torch_kl,
            hparams={"direction": "reverse", "log_target": True},
            grad_inputs=(0, 1),
            reductions=REDUCTIONS,
            label="reverse-log-target",
        ),
    ],
    "js_div": [
        Case(log_probs_and_probs, torch_js, grad_inputs=(0, 1), reductions=REDUCTIONS, label="probs"),
        Case(
            log_probs_and_log_probs,
            torch_js,
            hparams={"log_target": True},
            grad_inputs=(0, 1),
            reductions=REDUCTIONS,
            label="log-target",
        ),
    ],
}
