"""A command-line override Hydra cannot apply, as one ``error:`` line with a did-you-mean and exit status 2.

Hydra composes the config before ``train.py`` runs, and reports an unknown key (``optimizer=adamm``: the optimiser
is ``task.optimizer``), a misspelt one (``task.optimizer.lrr``) or a missing option (``callbacks=nonexistent``) in
six lines and exit status 1, with no hint of the key that was meant. ``report_config_errors`` runs a Hydra main
with ``HYDRA_FULL_ERROR`` set, so that those errors reach it, and hands any other exception back to Hydra's own
reporting (``hydra._internal.utils.run_and_report``, private: Hydra has no public hook for a failed composition),
unchanged.
"""

from __future__ import annotations

import difflib
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
OURS = "LOSS_RECIPES_HYDRA_FULL_ERROR"  # marks a HYDRA_FULL_ERROR that report_config_errors set, not the user


def report_config_errors(main: Callable[[], Any], config_name: str = "train") -> Any:
    """Run a ``@hydra.main`` function; an override Hydra cannot compose ends the process with one message, exit 2."""
    # the user's own HYDRA_FULL_ERROR=1 keeps Hydra's tracebacks; the one set here (which DDP ranks inherit) does not
    user_wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1" and OURS not in os.environ
    os.environ["HYDRA_FULL_ERROR"] = os.environ[OURS] = "1"  # Hydra re-raises instead of printing
    try:
        return main()
    except (ConfigCompositionException, OverrideParseException) as err:
        if user_wants_traceback:
            raise
        print(f"error: {composition_message(err, config_name)}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as err:
        if user_wants_traceback:
            raise
        os.environ.pop("HYDRA_FULL_ERROR", None)
        from hydra._internal.utils import run_and_report  # Hydra's own short report of any other failure

        failure = err  # the name ``err`` is unbound once this block ends
        tb = failure.__traceback__  # from Hydra's run_job on, the frames Hydra's report shows (it strips above it)
        while tb is not None and tb.tb_frame.f_code.co_name != "run_job":
            tb = tb.tb_next
        if tb is not None:
            failure = failure.with_traceback(tb)

        def reraise() -> None:
            raise failure

        return run_and_report(reraise)


def composition_message(err: Exception, config_name: str = "train") -> str:
    """The message for Hydra's composition error ``err``: the override, why it does not apply, and the fix."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and "/" in err.missing_cfg_file:
        group, _, option = err.missing_cfg_file.rpartition("/")
        options = sorted(err.options or group_options(group))
        hint = did_you_mean(option, options)
        listed = ", ".join(options) if options else "none"
        return f"{group}: there is no option {option!r} (the options are {listed}){hint}"
    cause = err.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and "not in struct" in str(cause):
        key = str(cause.full_key)
        value = override_value(key)
        shown = f"{key}={value}" if value is not None else key
        if argument := constructor_argument(key, config_name):
            return f"{key}: the config does not list this setting, but it is an argument of {argument}; add it with +{shown}"
        hint = did_you_mean_key(key, default_keys(config_name, other_overrides(key)))
        return (
            f"{key}: there is no such setting (got {shown}){hint}; "
            f"to add a new key on purpose, write +{shown} (python {Path(sys.argv[0]).name} --cfg job prints every setting)"
        )
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    if isinstance(err, OverrideParseException):
        return f"{err.override}: Hydra cannot parse this override: {text}"
    detail = f": {cause}" if cause is not None and str(cause) not in str(err) else ""
    return f"{text}{detail}".replace("\n", " ")


def override_value(key: str) -> str | None:
    """The value the command line gave ``key`` (``key=value``, ``+key=value``, ``~key``), or None."""
    for arg in sys.argv[1:]:
        name, sep, value = arg.lstrip("+~").partition("=")
        if sep and name == key:
            return value
    return None


def group_options(group: str) -> list[str]:
    """The option names of config group ``group`` (``callbacks``, ``experiment/focal_point``)."""
    folder = CONFIGS / group
    return [p.stem for p in folder.glob("*.yaml")] if folder.is_dir() else []


def did_you_mean(word: str, choices: list[str]) -> str:
    """``; did you mean a, b?`` for the close matches of ``word`` in ``choices``, or nothing."""
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def constructor_argument(key: str, config_name: str) -> str | None:
    """The ``_target_`` of ``key``'s parent node when ``key`` names one of its arguments (``trainer.max_time``:
    ``lightning.Trainer``), else None: the config lists only some of a constructor's arguments."""
    parent, _, name = key.rpartition(".")
    if not parent:
        return None
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import get_object

    for attempt in (other_overrides(key), []):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
                cfg = compose(config_name=config_name, overrides=attempt)
            target = OmegaConf.select(cfg, f"{parent}._target_", default=None)
            if not isinstance(target, str):
                return None
            return target if name in inspect.signature(get_object(target)).parameters else None
        except Exception:  # another bad override, or a target that cannot be imported: no claim
            continue
    return None


def did_you_mean_key(key: str, keys: list[str]) -> str:
    """Close matches of a dotted key among the config's ``keys``: the same name deeper in the tree
    (``optimizer`` -> ``task.optimizer``), or a near spelling next to it (``task.optimizer.lrr`` -> ``lr``)."""
    keys = [k for k in keys if not k.rpartition(".")[2].startswith("_")]  # not _target_, _partial_
    if not keys:
        return ""
    name = key.rpartition(".")[2]
    same_name = [k for k in keys if k.endswith(f".{key}") or k.rpartition(".")[2] == name]
    parent = key.rpartition(".")[0]
    siblings = [k for k in keys if k.rpartition(".")[0] == parent]
    near = difflib.get_close_matches(key, siblings or keys, n=3, cutoff=0.6)
    close = list(dict.fromkeys([*sorted(same_name, key=len)[:3], *near]))[:4]
    return f"; did you mean {', '.join(close)}?" if close else ""


def other_overrides(key: str) -> list[str]:
    """The command line's config overrides other than those of ``key`` (``loss=focal`` for ``loss.gama=2``)."""
    return [a for a in sys.argv[1:] if "=" in a and not a.startswith(("-", "hydra.")) and a.lstrip("+~").partition("=")[0] != key]


def default_keys(config_name: str, overrides: list[str] = ()) -> list[str]:
    """Every dotted key of the config composed with ``overrides`` (or, if they fail too, none; empty if that fails)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    for attempt in (list(overrides), []):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
                return list(dotted_keys(compose(config_name=config_name, overrides=attempt)))
        except Exception:  # another bad override, a sweep, or a default that needs the command line
            continue
    return []


def dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """The dotted paths of every key under ``node`` (list items are not keys)."""
    if not isinstance(node, DictConfig):
        return
    for name in node:
        path = f"{prefix}{name}"
        yield path
        child = OmegaConf.select(node, str(name), throw_on_resolution_failure=False)
        if isinstance(child, DictConfig) and not isinstance(child, ListConfig):
            yield from dotted_keys(child, f"{path}.")
