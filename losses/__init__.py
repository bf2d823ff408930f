"""Loss functions that declare their kind, built by name from config: ``losses.build("focal", gamma=2)``."""

# importing a family module registers its losses
from losses import boxes, classification, distribution, elbo, masks, pairs, regression, views  # noqa: F401
from losses.base import Loss, reduce
from losses.errors import ConfigError
from losses.registry import KINDS, LossSpec, available, build, kind_of, register, spec, unregister

__all__ = [
    "KINDS",
    "ConfigError",
    "Loss",
    "LossSpec",
    "available",
    "build",
    "kind_of",
    "reduce",
    "register",
    "spec",
    "unregister",
]
