"""A small ConvNet: stages of (conv-BN-ReLU) x2 and 2x2 max-pool, global average pool, linear head."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from losses.errors import check_integer, check_number, check_widths


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution, batch norm and ReLU: the block every stage repeats."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ConvNet(nn.Module):
    """``features`` maps images to a vector of ``widths[-1]`` numbers; ``head`` to ``num_outputs``.

    The split lets tasks reuse the encoder (siamese, SimCLR) or the feature map (detection).
    """

    outputs = ("logits", "embedding")  # what tasks may take from it (recipes/run/combinations.py)

    def __init__(
        self, in_channels: int = 1, num_outputs: int = 10, widths: Sequence[int] = (32, 64, 128), dropout: float = 0.0
    ) -> None:
        super().__init__()
        widths = check_widths("model", "widths", widths)
        check_number("model", "dropout", dropout, 0, 1, high_open=True)
        check_integer("model", "num_outputs", num_outputs, low=0)
        check_integer("model", "in_channels", in_channels, low=1)
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, width in enumerate(widths):
            layers += [conv_bn_relu(c_in, width), conv_bn_relu(width, width)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = width
        self.body = nn.Sequential(*layers)
        self.features = nn.Sequential(self.body, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = c_in
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, num_outputs)) if num_outputs else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
