"""Reference cases for the ELBO: log-likelihoods and the KL from torch.distributions, not the closed form."""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from tests.losses.conformance import Case, randn, reduce_reference

N, LATENT = 6, 3
IMAGE = (1, 4, 4)


def vae_outputs(g, dtype):
    """Decoder logits, binary data, and the encoder's mean and log-variance."""
    recon = randn(g, dtype, N, *IMAGE, scale=2.0)
    x = (torch.rand(N, *IMAGE, generator=g, dtype=torch.float64) > 0.5).to(dtype)
    return recon, x, randn(g, dtype, N, LATENT), randn(g, dtype, N, LATENT, scale=0.5)


def reference_elbo(recon, x, mu, logvar, reduction, beta=1.0, reconstruction="bernoulli", sigma=1.0):
    if reconstruction == "bernoulli":
        log_px = Bernoulli(logits=recon).log_prob(x)
    else:
        log_px = Normal(recon, torch.full_like(recon, sigma)).log_prob(x)
    posterior = Normal(mu, (0.5 * logvar).exp())
    kl = kl_divergence(posterior, Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    return reduce_reference(-log_px.flatten(1).sum(1) + beta * kl.sum(1), reduction)


CASES = {
    "elbo": [
        Case(vae_outputs, reference_elbo, grad_inputs=(0, 2, 3), label="bernoulli"),
        Case(vae_outputs, reference_elbo, hparams={"beta": 4.0}, grad_inputs=(0, 2, 3), label="bernoulli-beta4"),
        Case(
            vae_outputs,
            reference_elbo,
            hparams={"reconstruction": "gaussian", "sigma": 0.5},
            grad_inputs=(0, 1, 2, 3),
            label="gaussian",
        ),
    ],
}
