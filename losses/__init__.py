"""Loss functions that declare their kind, built by name from config: ``losses.build("focal", gamma=2)``."""

from losses import classification  # noqa: F401  (registers the losses)
from losses.base import Loss, reduce
from losses.errors import ConfigError
from losses.registry import KINDS, LossSpec, available, build, kind_of, register, spec

__all__ = ["KINDS", "ConfigError", "Loss", "LossSpec", "available", "build", "kind_of", "reduce", "register", "spec"]
