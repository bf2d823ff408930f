"""A multi-layer perceptron on flattened inputs (images or tabular rows)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from losses.errors import check_integer, check_number, check_widths


class MLP(nn.Module):
    """Flatten, then (Linear-ReLU-Dropout) per hidden width, then a linear head to ``num_outputs``."""

    outputs = ("logits", "embedding", "row outputs")  # what tasks may take from it (recipes/run/combinations.py)

    def __init__(
        self,
        in_features: int | Sequence[int] = 784,
        num_outputs: int = 10,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = check_widths("model", "hidden", hidden, allow_empty=True)  # [] is a linear model
        check_number("model", "dropout", dropout, 0, 1, high_open=True)
        check_integer("model", "num_outputs", num_outputs, low=0)
        n_in = in_features if isinstance(in_features, int) else math.prod(in_features)
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(n_in, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            n_in = width
        self.features = nn.Sequential(*layers)
        self.feature_dim = n_in
        self.head = nn.Linear(n_in, num_outputs) if num_outputs else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
