"""Batched image augmentation as tensor ops, so it runs on whatever device holds the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_translate(images: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by its own random offset in [-max_shift, max_shift] pixels, zero-filled."""
    if max_shift <= 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), device=images.device, generator=generator)
    rows = (offsets[0, :, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channels, rows, cols]


def random_hflip(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirror a random half of the images left to right."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
