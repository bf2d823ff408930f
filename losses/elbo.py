"""The evidence lower bound of a VAE: ``forward(recon_logits, x, mu, logvar)``.

The contract of the kind: ``recon_logits`` is the decoder's output for the data ``x`` (same shape, batch
first), ``mu`` and ``logvar`` ``[N, latent]`` are the encoder's Gaussian posterior. An optional
``kl_weight`` (KL warm-up) multiplies ``beta``; ``decoder_mean`` turns the decoder output into an image.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.base import Loss, as_float, autocast_off
from losses.registry import register

RECONSTRUCTIONS = ("bernoulli", "gaussian")


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, in closed form (Kingma & Welling 2014, Appendix B)."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """``-log Bernoulli(x; sigmoid(logits))`` per sample, summed over every data dimension."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def gaussian_nll(mean: Tensor, x: Tensor, sigma: float) -> Tensor:
    """``-log N(x; mean, sigma^2)`` per sample with a fixed ``sigma``, summed over every data dimension."""
    const = math.log(sigma) + 0.5 * math.log(2 * math.pi)
    return (0.5 * ((x - mean) / sigma).square() + const).flatten(1).sum(1)


@register("elbo", kind="elbo")
class ELBO(Loss):
    """Negative ELBO ``-log p(x|z) + beta * KL(q(z|x) || N(0, I))`` per sample, summed over pixels and latents, in nats.

    Kingma & Welling 2014 (the closed-form Gaussian KL); beta > 1 is the beta-VAE of Higgins et al. 2017.
    ``bernoulli``: logits for data in [0, 1] (binarised images); ``gaussian``: the mean, with a fixed ``sigma``.
    """

    search_space = {"beta": (0.25, 4.0, "log")}
    not_searched = {"sigma": "read by reconstruction=gaussian only, in data units"}

    citations = ("Kingma & Welling 2014", "Higgins et al. 2017")

    def __init__(self, beta: float = 1.0, reconstruction: str = "bernoulli", sigma: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.beta = self.check_number("beta", beta, 0.0)
        self.check(
            reconstruction in RECONSTRUCTIONS, f"reconstruction must be one of {', '.join(RECONSTRUCTIONS)}", reconstruction
        )
        self.reconstruction = reconstruction
        self.sigma = self.check_number("sigma", sigma, 0.0, low_open=True)

    def decoder_mean(self, recon_logits: Tensor) -> Tensor:
        """The mean of p(x|z) that the decoder output stands for: sigmoid(logits), or the Gaussian mean itself."""
        return torch.sigmoid(recon_logits) if self.reconstruction == "bernoulli" else recon_logits

    def reconstruction_nll(self, recon_logits: Tensor, x: Tensor) -> Tensor:
        """``-log p(x|z)`` per sample in nats, the likelihood this loss assumes (the importance-weighted bound uses it)."""
        recon_logits, x = as_float(recon_logits), as_float(x)
        if self.reconstruction == "bernoulli":
            return bernoulli_nll(recon_logits, x.to(recon_logits.dtype))
        return gaussian_nll(recon_logits, x.to(recon_logits.dtype), self.sigma)

    def check_inputs(self, recon_logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> None:
        """Shapes that fit together, floats, and data in [0, 1] for the Bernoulli likelihood."""
        for arg, t in (("recon_logits", recon_logits), ("x", x), ("mu", mu), ("logvar", logvar)):
            if not t.is_floating_point():
                raise self.input_error(arg, "a floating-point tensor", t.dtype)
        if recon_logits.shape != x.shape or x.ndim < 2:
            need = f"x's shape {tuple(x.shape)} with a batch dimension"
            raise self.input_error("recon_logits", need, tuple(recon_logits.shape))
        if mu.ndim != 2 or mu.shape[0] != x.shape[0]:
            raise self.input_error("mu", f"[N, latent] with N = {x.shape[0]}", tuple(mu.shape))
        if logvar.shape != mu.shape:
            raise self.input_error("logvar", f"mu's shape {tuple(mu.shape)}", tuple(logvar.shape))
        if self.reconstruction != "bernoulli" or not x.numel() or not self.check_values(x):
            return
        low, high = float(x.detach().min()), float(x.detach().max())
        if low < 0 or high > 1:
            raise self.input_error(
                "x",
                "data in [0, 1] for reconstruction='bernoulli' (pixels before mean/std normalisation)",
                f"values from {low:.4g} to {high:.4g}",
            )
        if recon_logits.numel() > 1 and bool(((recon_logits > 0) & (recon_logits < 1)).all()):
            warnings.warn(
                f"loss '{self.name}': recon_logits all lie in (0, 1); pass the decoder's logits, not sigmoid probabilities",
                stacklevel=3,
            )

    def forward(self, recon_logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, kl_weight: float = 1.0) -> Tensor:
        self.check_inputs(recon_logits, x, mu, logvar)
        if not (isinstance(kl_weight, (int, float)) and math.isfinite(kl_weight) and kl_weight >= 0):
            raise self.input_error("kl_weight", "a finite number >= 0", kl_weight)
        with autocast_off(recon_logits, x, mu, logvar):
            mu, logvar = as_float(mu), as_float(logvar)
            reconstruction = self.reconstruction_nll(recon_logits, x)
            kl = gaussian_kl(mu, logvar)
            # the terms are always nats per sample, averaged over the batch, whatever the reduction
            self.terms = {"reconstruction": reconstruction.detach().mean(), "kl": kl.detach().mean()}
            return self.reduce(reconstruction + self.beta * kl_weight * kl)
