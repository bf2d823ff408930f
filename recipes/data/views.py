"""Random views for self-supervised learning, as batched tensor ops on the batch's own device.

One call draws an independent transform per image: a random resized crop combined with a small
rotation (one ``affine_grid`` + ``grid_sample``), optional colour jitter (brightness and contrast,
plus saturation for colour images), Gaussian blur and additive noise. Inputs are normalised images
``[N, C, H, W]``; the crop samples the border outside the image, which for digits is background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.errors import ConfigError


def uniform(n: int, low: float, high: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``n`` values uniform in [low, high) on ``like``'s device and dtype."""
    return low + (high - low) * torch.rand(n, device=like.device, dtype=like.dtype, generator=generator)


def resized_crop_and_rotate(
    images: Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    degrees: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Crop a window of area ``scale`` (fraction of the image) and aspect ``ratio``, rotated by up to
    ``degrees``, at a random place that keeps the window inside the image, and resize it to full size."""
    n = images.shape[0]
    area = uniform(n, *scale, images, generator)
    log_ratio = uniform(n, math.log(ratio[0]), math.log(ratio[1]), images, generator)
    width = (area * log_ratio.exp()).sqrt().clamp(max=1.0)  # window size as a fraction of the image side
    height = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    angle = uniform(n, -degrees, degrees, images, generator) * math.pi / 180
    cx = uniform(n, -1, 1, images, generator) * (1 - width)  # the window's centre, in [-1, 1] coordinates
    cy = uniform(n, -1, 1, images, generator) * (1 - height)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([width * cos, -height * sin, cx], 1), torch.stack([width * sin, height * cos, cy], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def gaussian_blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Blur image ``i`` with a Gaussian of standard deviation ``sigma[i]`` pixels (separable, reflect-padded)."""
    n, c, h, w = images.shape
    radius = min(max(1, math.ceil(3 * float(sigma.max()))), min(h, w) - 1)
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernels = torch.exp(-0.5 * (offsets[None] / sigma[:, None].clamp_min(1e-3)) ** 2)
    kernels = (kernels / kernels.sum(1, keepdim=True)).repeat_interleave(c, 0)  # one kernel per image channel
    x = F.pad(images.reshape(1, n * c, h, w), (radius,) * 4, mode="reflect")
    x = F.conv2d(x, kernels[:, None, None, :], groups=n * c)
    x = F.conv2d(x, kernels[:, None, :, None], groups=n * c)
    return x.reshape(n, c, h, w)


def colour_jitter(images: Tensor, strength: float, generator: torch.Generator | None = None) -> Tensor:
    """Shift brightness, scale contrast (and, with 3 channels, saturation) by factors in [1 - s, 1 + s]."""
    n = images.shape[0]
    brightness = uniform(n, -strength, strength, images, generator).view(n, 1, 1, 1)
    contrast = uniform(n, 1 - strength, 1 + strength, images, generator).view(n, 1, 1, 1)
    mean = images.mean((1, 2, 3), keepdim=True)
    images = (images - mean) * contrast + mean + brightness
    if images.shape[1] == 3:
        saturation = uniform(n, 1 - strength, 1 + strength, images, generator).view(n, 1, 1, 1)
        grey = images.mean(1, keepdim=True)
        images = (images - grey) * saturation + grey
    return images


class ViewAugment(nn.Module):
    """Draw one random view of every image of a batch; call twice for SimCLR's two views.

    ``crop_scale``/``crop_ratio``: area fraction and aspect of the random resized crop; ``degrees``:
    largest rotation; ``jitter``/``jitter_p``: colour-jitter strength and probability (0 for grey
    digits, ~0.4 for colour data as in SimCLR); ``blur_p``/``blur_sigma``: Gaussian blur probability
    and sigma range in pixels; ``noise_std``: additive Gaussian noise in units of the normalised data.
    """

    def __init__(
        self,
        crop_scale: Sequence[float] = (0.5, 1.0),
        crop_ratio: Sequence[float] = (0.75, 1.333),
        degrees: float = 15.0,
        jitter: float = 0.0,
        jitter_p: float = 0.8,
        blur_p: float = 0.5,
        blur_sigma: Sequence[float] = (0.1, 1.0),
        noise_std: float = 0.1,
    ) -> None:
        super().__init__()

        def check(name: str, ok: bool, value: object, need: str) -> None:
            if not ok:
                raise ConfigError(f"task.augment: {name} must be {need} (got {value!r})")

        check("crop_scale", len(crop_scale) == 2 and 0 < crop_scale[0] <= crop_scale[1] <= 1, crop_scale, "[low, high] in (0, 1]")
        finite = lambda pair: all(math.isfinite(v) for v in pair)  # noqa: E731 - inf reaches the views as NaN
        ratio = len(crop_ratio) == 2 and 0 < crop_ratio[0] <= crop_ratio[1] and finite(crop_ratio)
        check("crop_ratio", ratio, crop_ratio, "finite [low, high], 0 < low")
        check("degrees", 0 <= degrees <= 180, degrees, "in [0, 180]")
        check("jitter", 0 <= jitter < 1, jitter, "in [0, 1)")
        for name, p in (("jitter_p", jitter_p), ("blur_p", blur_p)):
            check(name, 0 <= p <= 1, p, "a probability in [0, 1]")
        sigma = len(blur_sigma) == 2 and 0 < blur_sigma[0] <= blur_sigma[1] and finite(blur_sigma)
        check("blur_sigma", sigma, blur_sigma, "finite [low, high], 0 < low")
        check("noise_std", 0 <= noise_std < math.inf, noise_std, "finite and >= 0")
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.crop_ratio = (float(crop_ratio[0]), float(crop_ratio[1]))
        self.degrees, self.jitter, self.jitter_p = float(degrees), float(jitter), float(jitter_p)
        self.blur_p, self.blur_sigma = float(blur_p), (float(blur_sigma[0]), float(blur_sigma[1]))
        self.noise_std = float(noise_std)

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        n = images.shape[0]

        def chosen(p: float) -> Tensor:
            return (torch.rand(n, device=images.device, generator=generator) < p).view(n, 1, 1, 1)

        x = resized_crop_and_rotate(images, self.crop_scale, self.crop_ratio, self.degrees, generator)
        if self.jitter > 0 and self.jitter_p > 0:
            x = torch.where(chosen(self.jitter_p), colour_jitter(x, self.jitter, generator), x)
        if self.blur_p > 0:
            sigma = uniform(n, *self.blur_sigma, x, generator)
            x = torch.where(chosen(self.blur_p), gaussian_blur(x, sigma), x)
        if self.noise_std > 0:
            noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
            x = x + self.noise_std * noise
        return x
