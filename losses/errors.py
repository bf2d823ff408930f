"""The one exception type for "the configuration is wrong", and the checks that raise it in the house shape.

Losses, tasks, datamodules and models all check their settings through ``check`` and ``check_number``, so
every message reads ``<owner>: <setting> must be <what it needs> (got <value>)``, e.g.
``loss 'focal': gamma must be >= 0 (got -1)`` or ``data 'mnist5k': val_fraction must be in (0, 1) (got 1.5)``.
"""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A setting is invalid; raised before any data is loaded and printed without a traceback."""


def check(owner: str, ok: bool, need: str, got: object) -> None:
    """Raise ``ConfigError("<owner>: <need> (got <got>)")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{owner}: {need} (got {got!r})")


def check_number(
    owner: str,
    arg: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that setting ``arg`` of ``owner`` is a finite number inside the given bounds; returns it as a float."""
    finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    check(owner, finite, f"{arg} must be a finite number", value)
    if low is not None:
        ok = value > low if low_open else value >= low
        check(owner, ok, f"{arg} must be {'>' if low_open else '>='} {low:g}", value)
    if high is not None:
        ok = value < high if high_open else value <= high
        check(owner, ok, f"{arg} must be {'<' if high_open else '<='} {high:g}", value)
    return float(value)


def check_integer(owner: str, arg: str, value: object, low: int | None = None) -> int:
    """Check that setting ``arg`` of ``owner`` is an integer (not a bool), at least ``low`` when given."""
    check(owner, isinstance(value, int) and not isinstance(value, bool), f"{arg} must be an integer", value)
    if low is not None:
        check(owner, value >= low, f"{arg} must be an integer >= {low}", value)
    return int(value)


def check_widths(owner: str, arg: str, widths: object, allow_empty: bool = False) -> list[int]:
    """Check that setting ``arg`` is a list of positive integers (layer widths), non-empty unless ``allow_empty``."""
    values = list(widths) if isinstance(widths, (list, tuple)) or type(widths).__name__ == "ListConfig" else None
    ok = values is not None and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in values)
    need = "a list of positive integers" + ("" if allow_empty else ", at least one")
    check(owner, ok and (allow_empty or bool(values)), f"{arg} must be {need}", widths)
    return [int(w) for w in values]


def check_interval(
    owner: str, arg: str, value: object, low: float, high: float, low_open: bool = True, high_open: bool = True
) -> float:
    """Check that setting ``arg`` lies in one interval, named in one message: ``val_fraction must be in (0, 0.5)``."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    inside = number and (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    check(owner, inside, f"{arg} must be in {interval}", value)
    return float(value)
