"""Registry of losses by name, each declaring the kind of tensors it takes (see DESIGN.md).

An installed package adds its losses through the entry-point group ``loss_recipes.losses``, read at the first
lookup: each entry point names a module (importing it runs its ``@register`` decorators) or a loss class with a
``kind``, filed under the entry point's name. In a package's ``pyproject.toml``::

    [project.entry-points."loss_recipes.losses"]
    my_focal = "my_pkg.losses:MyFocal"
"""

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
ENTRY_POINTS = "loss_recipes.losses"
_entry_points_loaded = False


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


def load_entry_points() -> None:
    """Register the losses installed packages declare under ``loss_recipes.losses`` (once; a broken one warns)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    import importlib.metadata
    import warnings

    for point in importlib.metadata.entry_points(group=ENTRY_POINTS):
        where = f"entry point {point.name!r} = {point.value!r} (group {ENTRY_POINTS})"
        try:
            loaded = point.load()
            if isinstance(loaded, type) and loaded not in {s.cls for s in _REGISTRY.values()}:
                register(point.name, getattr(loaded, "kind", ""))(loaded)
        except Exception as err:  # a broken plug-in must not take the built-in losses down with it
            warnings.warn(
                f"{where} is skipped: {type(err).__name__}: {err}; an entry point names a module that registers "
                'losses or a loss class with a kind (kind = "classification")',
                stacklevel=2,
            )


def available(kind: str | None = None) -> list[str]:
    """Sorted names of the registered losses, of one kind when ``kind`` is given."""
    load_entry_points()
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown loss kind {kind!r}; kinds are {', '.join(KINDS)}")
    return sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


def spec(name: str) -> LossSpec:
    """The registry entry for ``name``; an unknown name is a ConfigError listing the valid ones."""
    load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"loss {name!r} is not registered; available losses: {', '.join(available())}") from None


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
        raise ConfigError(f"loss {name!r}: {err}; its hyperparameters are {', '.join(params) or 'none'}") from None
