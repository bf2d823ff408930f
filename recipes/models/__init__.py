"""Small, readable networks that tasks build on, and adapters for torchvision/timm networks; ``model=`` picks one."""

from recipes.models.adapters import TimmClassifier, TorchvisionClassifier
from recipes.models.convnet import ConvNet
from recipes.models.detector import AnchorFreeDetector
from recipes.models.detectors import TorchvisionDetector
from recipes.models.mlp import MLP
from recipes.models.segmenters import TorchvisionSegmenter
from recipes.models.unet import UNet

__all__ = [
    "MLP",
    "AnchorFreeDetector",
    "ConvNet",
    "TimmClassifier",
    "TorchvisionClassifier",
    "TorchvisionDetector",
    "TorchvisionSegmenter",
    "UNet",
]
