"""The config that tests a checkpoint (eval.py): the one its run was trained with, changed by the command line.

The trained config is the run folder's ``.hydra/config.yaml``. What the eval command line changes is taken from
eval.py's own composition (``configs/eval.yaml``): every node an override names (``trainer.limit_test_batches=2``,
``data=mnist``), and every node that differs from the composition without overrides (what a ``debug=`` or
``experiment=`` sets). ``paths`` and ``extras`` are this command's; ``${hydra:...}`` values of the trained config
(such as ``task_name``) keep the values they had in the training run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from losses.errors import ConfigError

OWN_NODES = ("paths", "extras")  # always this command's: this machine's folders, this run's folder
HYDRA_VALUE = re.compile(r"\$\{hydra:([\w.]+)\}")


def run_folder(ckpt: Path) -> Path:
    """The run folder above a checkpoint: the first parent that holds ``.hydra/config.yaml``."""
    for folder in list(ckpt.parents)[:3]:
        if (folder / ".hydra" / "config.yaml").is_file():
            return folder
    raise ConfigError(
        f"ckpt_path: no run folder with .hydra/config.yaml above {ckpt}; eval.py tests checkpoints that train.py "
        "wrote (logs/<task>/runs/<date>/checkpoints/best.ckpt)"
    )


def hydra_value(hydra_cfg: DictConfig, match: re.Match) -> str:
    try:
        found = OmegaConf.select(hydra_cfg, match.group(1))
    except Exception:  # an interpolation of the training run's Hydra config that needs its full config
        found = None
    return match.group(0) if found is None else str(found)


def freeze_hydra_values(node: Any, hydra_cfg: DictConfig) -> Any:
    """``node`` (a container) with each ``${hydra:key}`` replaced by its value in the training run's Hydra config."""
    if isinstance(node, dict):
        return {k: freeze_hydra_values(v, hydra_cfg) for k, v in node.items()}
    if isinstance(node, list):
        return [freeze_hydra_values(v, hydra_cfg) for v in node]
    if isinstance(node, str):
        return HYDRA_VALUE.sub(lambda m: hydra_value(hydra_cfg, m), node)
    return node


def overlay(target: dict, base: dict, new: dict) -> None:
    """Set into ``target`` what differs between ``base`` and ``new``: a node whose keys changed is replaced whole."""
    for key in base.keys() - new.keys():
        target.pop(key, None)
    for key, value in new.items():
        old = base.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and value.keys() == old.keys() and isinstance(target.get(key), dict):
            overlay(target[key], old, value)
        elif value != old:
            target[key] = value


def apply_overrides(target: dict, new: dict, overrides: list[str]) -> None:
    """Set into ``target`` the node of ``new`` at each path the command line names (``key=``, ``+key=``, a group
    at its own package such as ``data=mnist``), and delete what ``~key`` deletes. A ``_global_`` group (``debug=``,
    ``experiment=``) names no node; ``overlay`` carries its changes."""
    for override in OverridesParser.create().parse_overrides(overrides):
        *parents, leaf = override.key_or_group.split(".")
        source, holder = new, target
        for part in parents:
            source = source.get(part) if isinstance(source, dict) else None
            holder = holder.setdefault(part, {}) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            continue
        if override.is_delete():
            holder.pop(leaf, None)
        elif isinstance(source, dict) and leaf in source:
            holder[leaf] = source[leaf]


def trained_config(cfg: DictConfig) -> DictConfig:
    """The config to test ``cfg.ckpt_path`` with: its run's config, with this command's changes (module docstring)."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.get("ckpt_path") is None:
        raise ConfigError(
            "ckpt_path: not set; give the checkpoint of a run that train.py wrote, e.g. "
            "ckpt_path=logs/<task>/runs/<date>/checkpoints/best.ckpt"
        )
    ckpt = Path(str(cfg.ckpt_path)).expanduser().resolve()
    if not ckpt.is_file():
        raise ConfigError(f"ckpt_path: no such checkpoint file {ckpt}")
    folder = run_folder(ckpt)
    trained = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "config.yaml"), resolve=False)
    hydra_yaml = folder / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():
        trained = freeze_hydra_values(trained, OmegaConf.load(hydra_yaml).hydra)

    new = OmegaConf.to_container(cfg, resolve=False)
    base = OmegaConf.to_container(compose(config_name=HydraConfig.get().job.config_name), resolve=False)
    overlay(trained, base, new)
    apply_overrides(trained, new, list(HydraConfig.get().overrides.task))
    trained.update({key: new[key] for key in OWN_NODES if key in new})
    trained.update(ckpt_path=str(ckpt), fit=False, test=True)
    without_checkpoints(trained)
    return OmegaConf.create(trained)


def without_checkpoints(config: dict) -> None:
    """No checkpoint callbacks when only testing: nothing to save, and none restores the training run's state."""
    callbacks = config.get("callbacks") or {}
    for name, node in list(callbacks.items()):
        if isinstance(node, dict) and str(node.get("_target_", "")).endswith("ModelCheckpoint"):
            del callbacks[name]
    if isinstance(config.get("trainer"), dict):
        config["trainer"]["enable_checkpointing"] = False
