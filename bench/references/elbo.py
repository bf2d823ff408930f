"""References for the ELBO: log-likelihoods and the KL from torch.distributions, not the closed form."""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from bench.references.common import reduce_reference


def reference_elbo(recon, x, mu, logvar, reduction, beta=1.0, reconstruction="bernoulli", sigma=1.0):
    if reconstruction == "bernoulli":
        log_px = Bernoulli(logits=recon).log_prob(x)
    else:
        log_px = Normal(recon, torch.full_like(recon, sigma)).log_prob(x)
    posterior = Normal(mu, (0.5 * logvar).exp())
    kl = kl_divergence(posterior, Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    return reduce_reference(-log_px.flatten(1).sum(1) + beta * kl.sum(1), reduction)
