"""Reference cases for the ELBO: inputs, and the reference in ``bench/references/elbo.py`` (torch.distributions)."""

from __future__ import annotations

import torch

from bench.references.elbo import reference_elbo
from tests.losses.conformance import Case, randn

N, LATENT = 6, 3
IMAGE = (1, 4, 4)


def vae_outputs(g, dtype):
    """Decoder logits, binary data, and the encoder's mean and log-variance."""
    recon = randn(g, dtype, N, *IMAGE, scale=2.0)
    x = (torch.rand(N, *IMAGE, generator=g, dtype=torch.float64) > 0.5).to(dtype)
    return recon, x, randn(g, dtype, N, LATENT), randn(g, dtype, N, LATENT, scale=0.5)


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
