"""The search space each loss declares (``search_space``), read by hyperparameter searches (``hparams_search=tune_loss``,
``experiment=which_loss``) and checked against the loss's own validation by tests/losses/test_search_space.py."""

from __future__ import annotations

import inspect
from typing import NamedTuple

from losses.registry import spec


class Range(NamedTuple):
    """One hyperparameter's search range: ``low`` to ``high``, on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False


def search_space(name: str) -> dict[str, Range]:
    """The ranges the loss registered as ``name`` declares, by hyperparameter (empty: nothing to search)."""
    return {arg: as_range(name, arg, value) for arg, value in spec(name).cls.search_space.items()}


def as_range(name: str, arg: str, value: tuple) -> Range:
    """``(low, high)`` or ``(low, high, "log")`` as a Range; anything else is a declaration error of the loss."""
    ok = len(value) in (2, 3) and (len(value) == 2 or value[2] == "log")
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value[:2]) and value[0] < value[1]
    if not ok or (len(value) == 3 and value[0] <= 0):
        raise ValueError(
            f"loss {name!r}: search_space[{arg!r}] must be (low, high) or (low, high, 'log'), "
            f"low < high (> 0 on a log scale) (got {value!r})"
        )
    return Range(float(value[0]), float(value[1]), len(value) == 3)


def not_searched(name: str) -> dict[str, str]:
    """The hyperparameters the loss leaves out of its search, with the reason (declared on it or a base class)."""
    cls = spec(name).cls
    merged: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        merged.update(getattr(base, "not_searched", None) or {})
    return {arg: why for arg, why in merged.items() if arg not in cls.search_space}


def number_hyperparameters(name: str) -> list[str]:
    """The constructor arguments that take a real number (a float default, or ``float`` in the annotation),
    neither ``reduction`` nor a flag: the ones a search could explore."""
    found = []
    for arg, param in inspect.signature(spec(name).cls).parameters.items():
        if arg == "reduction" or isinstance(param.default, bool):
            continue
        if isinstance(param.default, float) or "float" in str(param.annotation):
            found.append(arg)
    return found
