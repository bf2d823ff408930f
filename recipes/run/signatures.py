"""Check every ``_target_`` node of a composed config against its target's signature, before anything is built.

A key the target does not take is refused with the closest match and the keys it does take; a value is
converted to the type the signature annotates (``"3"`` -> 3, ``"no"`` -> False, ``2.0`` -> 2) or refused
(``seed=abc``, ``lr=abc``, ``max_epochs=1.7``). Top-level settings that are not ``_target_`` arguments
(``seed``, ``skip_nonfinite``, ...) are checked against ``SETTINGS``. Converted values are written back, so
the run uses them.
"""

from __future__ import annotations

import collections.abc
import difflib
import importlib
import inspect
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Union

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from losses.errors import ConfigError

HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
SCALARS = (bool, int, float, str, type(None))

# top-level settings of configs/train.yaml that no `_target_` takes: their types
SETTINGS: dict[str, Any] = {
    "seed": int | None,
    "compile": bool,
    "channels_last": bool,
    "skip_nonfinite": bool,
    "nonfinite_check_every": int | None,
    "fit": bool,
    "test": bool,
    "ckpt_path": str | None,
    "overwrite": bool,
    "float32_matmul_precision": str,
}
# the settings of configs/extras/ (recipes/run/extras.py reads them)
EXTRAS: dict[str, Any] = {"print_config": bool, "ignore_warnings": bool, "enforce_tags": bool}
MAX_SEED = 2**32 - 1  # numpy's seeds, which Lightning's seed_everything refuses past


# ----- targets ------------------------------------------------------------------------------------
def import_target(path: str, setting: str) -> Any:
    """The object a dotted ``_target_`` names; a ConfigError with the closest names when it does not import."""
    module_name, _, name = str(path).rpartition(".")
    parts = str(path).split(".")
    for cut in range(len(parts) - 1, 0, -1):  # `torch.optim.lr_scheduler.OneCycleLR`, `pkg.Class.method`
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for i, attr in enumerate(parts[cut:]):
            if not hasattr(obj, attr):
                close = difflib.get_close_matches(attr, [n for n in dir(obj) if not n.startswith("_")], n=3)
                near = ".".join(parts[: cut + i])
                hint = f"; did you mean {', '.join(f'{near}.{c}' for c in close)}?" if close else ""
                raise ConfigError(f"{setting}: cannot import {path!r} ({near} has no {attr!r}){hint}")
            obj = getattr(obj, attr)
        return obj
    raise ConfigError(f"{setting}: cannot import {path!r} (no module {module_name or name!r})")


def parameters(target: Any) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """The target's named parameters, their resolved annotations, and whether it takes ``**kwargs``."""
    func = target.__init__ if inspect.isclass(target) else target
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return {}, {}, True
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # annotations naming what cannot be imported here: check names only
        hints = {}
    named = {
        n: p
        for n, p in signature.parameters.items()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return named, hints, var_keyword


# ----- types ---------------------------------------------------------------------------------------
@dataclass
class Admitted:
    """What an annotation admits, as far as a config value can show it: scalar types, literal values, lists."""

    scalars: set[type] = field(default_factory=set)
    literals: list[Any] = field(default_factory=list)
    sequences: bool = False  # a list/tuple (or a Tensor, which losses and optimisers build from numbers)


def admitted(annotation: Any) -> Admitted | None:
    """What ``annotation`` admits, or None when a check cannot judge it (``Any``, callables, classes, no annotation)."""
    if annotation is inspect.Parameter.empty or annotation is Any or isinstance(annotation, str):
        return None
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        found = Admitted()
        for arg in typing.get_args(annotation):
            inner = admitted(arg)
            if inner is None:
                return None
            found.scalars |= inner.scalars
            found.literals += inner.literals
            found.sequences |= inner.sequences
        return found
    if origin is typing.Literal:
        return Admitted(literals=list(typing.get_args(annotation)))
    if annotation is None or annotation is type(None):
        return Admitted(scalars={type(None)})
    if annotation in SCALARS:
        return Admitted(scalars={annotation})
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple) or annotation is torch.Tensor:
        return Admitted(sequences=True, scalars={int, float} if annotation is torch.Tensor else set())
    return None


def convert(value: Any, allowed: set[type]) -> tuple[bool, Any]:
    """``(ok, value)``: ``value`` as one of the ``allowed`` scalar types, converting strings and integral floats."""
    if value is None:
        return type(None) in allowed, None
    if isinstance(value, bool):
        return bool in allowed, value
    if isinstance(value, int):
        if int in allowed or float in allowed:  # an integer is a number: 0 stays 0 in messages
            return True, value
        if bool in allowed and value in (0, 1):
            return True, bool(value)
        return False, value
    if isinstance(value, float):
        if float in allowed:
            return True, value
        return (True, int(value)) if int in allowed and value.is_integer() else (False, value)
    if isinstance(value, str):
        if str in allowed:
            return True, value
        text = value.strip().lower()
        if bool in allowed and text in TRUE + FALSE:
            return True, text in TRUE
        for kind in (int, float):
            if kind in allowed:
                try:
                    return True, kind(text)
                except ValueError:
                    pass
        if type(None) in allowed and text in ("null", "none"):
            return True, None
    return False, value


def describe(what: Admitted) -> str:
    """``an integer or null``, ``one of 'min', 'max'``: what a setting must be, for the message."""
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    shown = (bool, float, str) if float in what.scalars else (bool, int, str)  # a number covers an integer
    parts = [names[t] for t in shown if t in what.scalars]
    if what.literals:
        parts.append("one of " + ", ".join(repr(v) for v in what.literals))
    if what.sequences and not parts:
        parts.append("a list such as [16, 32]")
    if type(None) in what.scalars:
        parts.append("null")
    return " or ".join(parts)


def checked(setting: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to what ``annotation`` admits, or a ConfigError naming ``setting``."""
    what = admitted(annotation)
    if what is None:
        return value
    if isinstance(value, (list, tuple, ListConfig)):
        if what.sequences:
            return value
        raise ConfigError(f"{setting}: must be {describe(what)} (got a list {list(value)!r})")
    if isinstance(value, (dict, DictConfig)):
        raise ConfigError(f"{setting}: must be {describe(what)} (got a mapping)")
    for literal in what.literals:
        if value == literal and type(value) is type(literal) or str(value) == str(literal):
            return literal
    ok, converted = convert(value, what.scalars)
    if not ok:
        raise ConfigError(f"{setting}: must be {describe(what)} (got {value!r})")
    return converted


def check_value(setting: str, annotation: Any, node: DictConfig, key: str) -> None:
    """Check ``node[key]`` against ``annotation`` and write the converted value back (where it is not interpolated)."""
    value = node[key]
    converted = checked(setting, value, annotation)
    if (converted is not value or type(converted) is not type(value)) and not OmegaConf.is_interpolation(node, key):
        with open_dict(node):
            node[key] = converted


# ----- the walk ------------------------------------------------------------------------------------
def target_nodes(cfg: DictConfig, prefix: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every node with a ``_target_`` (depth first, parents before children), with its dotted path."""
    if "_target_" in cfg:
        yield prefix, cfg
    for key in cfg:
        if prefix == "" and key == "hydra":
            continue
        child = cfg._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            yield from target_nodes(child, f"{prefix}.{key}" if prefix else str(key))


def check_node(path: str, node: DictConfig) -> None:
    """One ``_target_`` node: it imports, every key is a parameter, every value has the parameter's type."""
    target = import_target(node._target_, f"{path}._target_")
    named, hints, var_keyword = parameters(target)
    if not named and var_keyword:
        return
    accepted = [n for n in named if n != "self"]
    for key in node:
        key = str(key)
        if key in HYDRA_KEYS:
            continue
        setting = f"{path}.{key}"
        if key not in named:
            if var_keyword:
                continue
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(
                f"{setting}: {node._target_} takes no argument '{key}'; {hint}it takes {', '.join(accepted) or 'none'}"
            )
        annotation = hints.get(key, named[key].annotation)
        if annotation is inspect.Parameter.empty or isinstance(annotation, str):  # unannotated: the default's type
            default = named[key].default
            annotation = type(default) if isinstance(default, (bool, int, float)) else inspect.Parameter.empty
        check_value(setting, annotation, node, key)


def check_settings(cfg: DictConfig) -> None:
    """The top-level settings of ``SETTINGS``: converted to their type in place, or a ConfigError."""
    for key, annotation in SETTINGS.items():
        if key in cfg:
            check_value(key, annotation, cfg, key)
    extras = cfg.get("extras")
    for key, annotation in EXTRAS.items():
        if isinstance(extras, DictConfig) and key in extras:
            check_value(f"extras.{key}", annotation, extras, key)
    seed = cfg.get("seed")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed: must be an integer from 0 to {MAX_SEED} (numpy's seeds) or null (got {seed}); e.g. seed=0")


def check_signatures(cfg: DictConfig, skip: tuple[str, ...] = ()) -> None:
    """Check the top-level settings, then every ``_target_`` node outside the top-level keys ``skip`` (the loss
    slots, whose user ``_target_`` losses ``checks.check_slot`` builds and checks itself)."""
    check_settings(cfg)
    for path, node in list(target_nodes(cfg)):
        if path.split(".")[0] not in skip:
            check_node(path, node)
