"""References for the distribution losses: torch.nn.functional.kl_div, and JS written through it."""

from __future__ import annotations

import torch.nn.functional as F


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
