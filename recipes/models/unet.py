"""A small UNet (Ronneberger et al. 2015): an encoder of (conv-BN-ReLU) x2 blocks, a mirrored decoder with skips."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.errors import check_integer, check_widths
from recipes.models.convnet import conv_bn_relu


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(c_in, c_out), conv_bn_relu(c_out, c_out))


class UNet(nn.Module):
    """``forward(images [B, C_in, H, W]) -> logits [B, num_outputs, H, W]``; H and W need not divide 2^depth."""

    outputs = ("pixel logits",)  # what tasks may take from it (recipes/run/combinations.py)

    def __init__(self, in_channels: int = 1, num_outputs: int = 11, widths: Sequence[int] = (8, 16, 32, 64, 128)) -> None:
        super().__init__()
        widths = check_widths("model", "widths", widths)
        check_integer("model", "num_outputs", num_outputs, low=1)
        check_integer("model", "in_channels", in_channels, low=1)
        self.down = nn.ModuleList()
        c_in = in_channels
        for width in widths:
            self.down.append(double_conv(c_in, width))
            c_in = width
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for skip in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c_in, skip, 2, stride=2))
            self.merge.append(double_conv(2 * skip, skip))
            c_in = skip
        self.head = nn.Conv2d(c_in, num_outputs, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = up(x)
            if x.shape[-2:] != skip.shape[-2:]:  # odd sizes: pad the upsampled map to the skip's size
                x = F.pad(x, (0, skip.shape[-1] - x.shape[-1], 0, skip.shape[-2] - x.shape[-2]))
            x = merge(torch.cat([skip, x], 1))
        return self.head(x)
