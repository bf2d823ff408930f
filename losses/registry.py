"""Registry of losses by name, each declaring the kind of tensors it takes (see DESIGN.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from losses.errors import ConfigError

KINDS = (
    "classification",
    "regression",
    "distribution",
    "elbo",
    "pair",
    "triplet",
    "views",
    "boxes",
    "masks",
)


@dataclass(frozen=True)
class LossSpec:
    """What the registry knows of one loss: its name, its kind and the class that builds it."""

    name: str
    kind: str
    cls: type[nn.Module]


_REGISTRY: dict[str, LossSpec] = {}


def register(name: str, kind: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: file ``cls`` under ``name`` with ``kind``, and stamp both on the class."""
    if kind not in KINDS:
        raise ValueError(f"unknown loss kind {kind!r}; kinds are {', '.join(KINDS)}")

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"loss {name!r} is registered twice")
        cls.name = name
        cls.kind = kind
        _REGISTRY[name] = LossSpec(name, kind, cls)
        return cls

    return decorate


def unregister(name: str) -> None:
    """Remove the loss ``name`` from the registry, e.g. one that a test registered for itself."""
    del _REGISTRY[name]


def available(kind: str | None = None) -> list[str]:
    """Sorted names of the registered losses, of one kind when ``kind`` is given."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown loss kind {kind!r}; kinds are {', '.join(KINDS)}")
    return sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


def spec(name: str) -> LossSpec:
    """The registry entry for ``name``; an unknown name is a ConfigError listing the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"loss {name!r} is not registered; available losses: {', '.join(available())}"
        ) from None


def kind_of(name: str) -> str:
    """The kind of the loss registered as ``name``."""
    return spec(name).kind


def build(name: str, **hparams: Any) -> nn.Module:
    """Instantiate the loss ``name`` with its hyperparameters, validated by its constructor."""
    cls = spec(name).cls
    try:
        return cls(**hparams)
    except TypeError as err:  # unknown or missing keyword: say which ones the loss takes
        import inspect

        params = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
        raise ConfigError(
            f"loss {name!r}: {err}; its hyperparameters are {', '.join(params) or 'none'}"
        ) from None
