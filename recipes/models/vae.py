"""A fully connected VAE (Kingma & Welling 2014): an encoder to a diagonal Gaussian, a decoder to per-pixel outputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from losses.errors import check_integer, check_widths


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """A sample z = mu + sigma * eps with eps ~ N(0, I), differentiable in mu and logvar."""
    return mu + torch.randn_like(mu) * (0.5 * logvar).exp()


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """``encode(x) -> (mu, logvar)`` of q(z|x); ``decode(z) -> [N, C, H, W]`` logits (or means) of p(x|z).

    Images are flattened; the decoder mirrors the encoder's ``hidden`` widths. ``forward`` samples z once
    with the reparameterisation trick and returns ``(recon_logits, mu, logvar)``.
    """

    outputs = ("encode/decode",)  # what tasks may take from it (recipes/run/combinations.py)

    def __init__(
        self, in_channels: int = 1, image_size: int = 28, latent_dim: int = 20, hidden: Sequence[int] = (512, 256)
    ) -> None:
        super().__init__()
        check_integer("model", "latent_dim", latent_dim, low=1)
        hidden = check_widths("model", "hidden", hidden, allow_empty=True)
        self.image_shape = (in_channels, image_size, image_size)
        self.latent_dim = latent_dim
        pixels = math.prod(self.image_shape)
        body = [mlp([pixels, *hidden]), nn.ReLU(inplace=True)] if hidden else []
        self.encoder = nn.Sequential(nn.Flatten(), *body)
        self.to_posterior = nn.Linear(hidden[-1] if hidden else pixels, 2 * latent_dim)
        self.decoder = mlp([latent_dim, *reversed(hidden), pixels])

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.to_posterior(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z).view(-1, *self.image_shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar)), mu, logvar
