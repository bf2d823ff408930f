"""Small, readable networks that tasks build on; ``model=`` picks one in config."""

from recipes.models.convnet import ConvNet
from recipes.models.mlp import MLP

__all__ = ["MLP", "ConvNet"]
