"""Reference cases for the distribution losses: torch.nn.functional.kl_div, and JS written through it."""

from __future__ import annotations

import torch.nn.functional as F

from tests.losses.conformance import Case, randn

N, C = 12, 5
REDUCTIONS = ("none", "mean", "sum", "batchmean")


def log_probs_and_probs(g, dtype):
    return F.log_softmax(randn(g, dtype, N, C, scale=2.0), 1), F.softmax(randn(g, dtype, N, C, scale=2.0), 1)


def log_probs_and_log_probs(g, dtype):
    return F.log_softmax(randn(g, dtype, N, C, scale=2.0), 1), F.log_softmax(randn(g, dtype, N, C, scale=2.0), 1)


def torch_kl(input, target, reduction, direction="forward", log_target=False):
    """KL(p || q) is torch's kl_div(log q, p); the reverse KL(q || p) swaps the two distributions."""
    if direction == "forward":
        return F.kl_div(input, target, reduction=reduction, log_target=log_target)
    log_p = target if log_target else target.log()
    return F.kl_div(log_p, input, reduction=reduction, log_target=True)


def torch_js(input, target, reduction, log_target=False):
    """JS(p, q) = 1/2 KL(p || m) + 1/2 KL(q || m) with m = (p + q) / 2, each KL through torch's kl_div."""
    p, q = (target.exp() if log_target else target), input.exp()
    log_m = ((p + q) / 2).log()
    return 0.5 * F.kl_div(log_m, p, reduction=reduction) + 0.5 * F.kl_div(log_m, q, reduction=reduction)


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
