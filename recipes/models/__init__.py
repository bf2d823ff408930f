"""Small, readable networks that tasks build on; ``model=`` picks one in config."""

from recipes.models.convnet import ConvNet
from recipes.models.detector import AnchorFreeDetector
from recipes.models.mlp import MLP
from recipes.models.unet import UNet

__all__ = ["MLP", "AnchorFreeDetector", "ConvNet", "UNet"]
