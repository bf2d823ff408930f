"""Task x data x model, checked by name before any data loads, as slots x losses are (``check_kind``).

Three declarations, each a class attribute, meet here:

- a task declares the batch it consumes, ``batch = "images+labels"``, and what it needs from each model it
  builds on, ``model_outputs = {"model": "logits"}`` (a config key -> an output name);
- a datamodule declares the batches it provides, ``batches = ("images+labels",)``;
- a model declares what it outputs, ``outputs = ("logits", "embedding")``.

The names are those of ``BATCHES`` and ``OUTPUTS`` below. Your own datamodule or model (a ``_target_`` of your
own) that declares nothing is accepted unchecked; declare the attribute in its class to have it checked, and
listed where it fits. Beside the names, the numbers both sides know from the config must agree: the model's
``in_channels`` and the data's ``channels``, the classes of the model's (and the task's) outputs and the data's.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from losses.errors import ConfigError
from recipes.base import Task
from recipes.run.tasks import task_name

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# what a batch holds, by the name a task consumes and a datamodule provides (images are uint8 [N, C, H, W])
BATCHES = {
    "images+labels": "(images, class indices [N])",
    "pairs/triplets": "training (x1, x2, y = +1 same / -1 different) or (anchor, positive, negative); "
    "evaluation (x1, x2, y, class1, class2)",
    "images+boxes": "(images, boxes [N, M, 4] xyxy, labels [N, M], padded with -1, ...)",
    "images+masks": "(images, ..., class maps [N, H, W]): the masks last",
    "rows+targets": "(features [N, F] float32, targets [N])",
    "rows+labels": "(features [N, F] float32, class indices [N])",
}

# what a model outputs, by the name a task needs and a model declares
OUTPUTS = {
    "logits": "class scores [N, C] (C = num_outputs)",
    "embedding": "a vector per input [N, D] (an encoder: features, with or without a head)",
    "row outputs": "outputs per table row [N, K] from flat features",
    "encode/decode": "encode(x) -> (mu, logvar), decode(z) -> per-pixel logits (a VAE)",
    "detector outputs": "class scores and box distances per location, with stride, locations() and decode()",
    "pixel logits": "class scores per pixel [N, C, H, W]",
}

# for a model output that counts classes: (the model's key, the data's key) that must agree, and the task's key
CLASS_KEYS = {
    "logits": ("num_outputs", "num_classes"),
    "detector outputs": ("num_classes", "num_classes"),
    "pixel logits": ("num_outputs", "mask_classes"),
}
DATA_REFERENCE = re.compile(r"\$\{data\.(\w+)")


def check_combination(cfg: DictConfig, task: type[Task]) -> None:
    """Refuse data that does not provide the batch the task consumes, a model that does not output what the task
    needs or reads what the data does not have, and channel or class counts that disagree."""
    if isinstance(cfg.get("data"), DictConfig):
        check_data(cfg, task)
    for key, need in task.model_outputs.items():
        node = OmegaConf.select(cfg, key)
        if isinstance(node, DictConfig) and "_target_" in node:
            check_model(cfg, task, key, need, node)
            check_counts(cfg, task, key, need)


# ----- names --------------------------------------------------------------------------------------
def consumed_batches(task: type[Task]) -> tuple[str, ...]:
    """The batches a task consumes: its ``batch``, one name or a tuple of names it takes alike."""
    return (task.batch,) if isinstance(task.batch, str) else tuple(task.batch or ())


def check_data(cfg: DictConfig, task: type[Task]) -> None:
    """The task's ``batch`` among the batches the datamodule class declares."""
    provided = declared(target_class(cfg.data.get("_target_")), "batches")
    consumed = consumed_batches(task)
    if not consumed or provided is None or set(consumed) & set(provided):
        return
    fitting = [name for name, batches in options("data", "batches") if set(consumed) & set(batches)]
    raise ConfigError(
        f"{option(cfg, 'data')}: task '{task_name(task)}' consumes {' or '.join(consumed)}, but {owner(cfg, 'data')} provides "
        f"{' or '.join(provided) or 'nothing it declares'}. Data that fit: {', '.join(fitting) or 'none shipped'}"
    )


def check_model(cfg: DictConfig, task: type[Task], key: str, need: str, node: DictConfig) -> None:
    """The output the task needs among those the model class declares; every ``${data.X}`` it reads exists."""
    outputs = declared(target_class(node.get("_target_")), "outputs")
    setting = option(cfg, "model") if key == "model" else f"{key}._target_={node._target_}"
    if outputs is not None and need not in outputs:
        raise ConfigError(
            f"{setting}: task '{task_name(task)}' needs {need} from {describe(key)}, but {model_owner(cfg, key)} "
            f"outputs {', '.join(outputs) or 'nothing it declares'}. Models that fit: {fitting_models(cfg, need)}"
        )
    for path, reads in data_references(OmegaConf.to_container(node, resolve=False), key):
        missing = [name for name in reads if name not in cfg.data]
        if missing:
            raise ConfigError(
                f"{setting}: {path} reads data.{missing[0]}, but {owner(cfg, 'data')} has no '{missing[0]}' "
                f"({model_owner(cfg, key)} is for other data). Models that fit: {fitting_models(cfg, need)}"
            )


def fitting_models(cfg: DictConfig, need: str) -> str:
    """The model options that output ``need`` and read only keys this data has."""
    found = [
        name
        for name, outputs in options("model", "outputs")
        if need in outputs and set(option_references("model", name)) <= set(cfg.data)
    ]
    return ", ".join(found) or "none shipped"


# ----- numbers ------------------------------------------------------------------------------------
def check_counts(cfg: DictConfig, task: type[Task], key: str, need: str) -> None:
    """The model's input channels and its (and the task's) classes agree with the data's, where all are known."""
    data_channels, in_channels = known(cfg, "data.channels"), known(cfg, f"{key}.in_channels")
    if data_channels is not None and in_channels is not None and data_channels != in_channels:
        raise ConfigError(
            f"{key}.in_channels: {model_owner(cfg, key)} takes {in_channels}-channel images, but {owner(cfg, 'data')} "
            f"has data.channels={data_channels}; set {key}.in_channels={data_channels} (or leave it at ${{data.channels}})"
        )
    if need not in CLASS_KEYS:
        return
    model_key, data_key = CLASS_KEYS[need]
    classes = known(cfg, f"data.{data_key}")
    for setting in (f"{key}.{model_key}", "task.num_classes"):
        value = known(cfg, setting)
        if classes is not None and value is not None and value != classes:
            raise ConfigError(
                f"{setting}: {value} classes, but {owner(cfg, 'data')} has data.{data_key}={classes} and task "
                f"'{task_name(task)}' needs {need} for each; set {setting}={classes} (or leave it at ${{data.{data_key}}})"
            )


def known(cfg: DictConfig, key: str) -> int | None:
    """A count as the config gives it; None where it is absent, cannot be resolved or is no count (< 1 or not an
    integer: the constructor refuses that with its own range)."""
    value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


# ----- declarations and options -------------------------------------------------------------------
def target_class(target: object) -> type | None:
    """The class a ``_target_`` names; None where it does not import (the signature check reports that)."""
    from recipes.run.signatures import import_target

    try:
        found = import_target(str(target), "_target_")
    except ConfigError:
        return None
    return found if isinstance(found, type) else None


def declared(cls: type | None, attribute: str) -> tuple[str, ...] | None:
    """A class's declaration (``batches``, ``outputs``) as a tuple of names; None where it declares none."""
    value = getattr(cls, attribute, None)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


@cache
def option_config(group: str, name: str) -> dict[str, Any]:
    """The keys of ``configs/<group>/<name>.yaml`` merged over those of the options its ``defaults`` name."""
    raw = OmegaConf.to_container(OmegaConf.load(CONFIGS / group / f"{name}.yaml"), resolve=False)
    merged: dict[str, Any] = {}
    for parent in raw.pop("defaults", []):
        if isinstance(parent, str) and (CONFIGS / group / f"{parent}.yaml").is_file():
            merged |= option_config(group, parent)
    return merged | raw


def options(group: str, attribute: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(name, declaration)`` for every option of a config group whose class declares ``attribute``."""
    for path in sorted((CONFIGS / group).glob("*.yaml")):
        found = declared(target_class(option_config(group, path.stem).get("_target_")), attribute)
        if found is not None:
            yield path.stem, found


def option_references(group: str, name: str) -> list[str]:
    """The ``data.X`` keys an option's values interpolate."""
    return [read for _, reads in data_references(option_config(group, name), group) for read in reads]


def data_references(node: Any, path: str) -> Iterator[tuple[str, list[str]]]:
    """``(key, [X, ...])`` for every value under ``node`` that interpolates ``${data.X}``."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from data_references(v, f"{path}.{k}")
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from data_references(v, f"{path}[{i}]")
    elif isinstance(node, str) and DATA_REFERENCE.search(node):
        yield path, DATA_REFERENCE.findall(node)


def option(cfg: DictConfig, group: str) -> str:
    """``data=<option>`` as chosen (Hydra's choice), else ``data._target_=<class>``."""
    from hydra.core.hydra_config import HydraConfig

    choice = HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None
    return f"{group}={choice}" if choice else f"{group}._target_={cfg[group].get('_target_')}"


def owner(cfg: DictConfig, group: str) -> str:
    """``data '<name>'``: the config's ``name``, else the option chosen, else the class."""
    name = OmegaConf.select(cfg, f"{group}.name", throw_on_resolution_failure=False)
    return f"{group} '{name or option(cfg, group).partition('=')[2]}'"


def model_owner(cfg: DictConfig, key: str) -> str:
    """``model 'convnet'`` for the run's model; ``model 'recipes.models.MLP'`` for another (the teacher)."""
    return owner(cfg, "model") if key == "model" else f"model '{OmegaConf.select(cfg, key)._target_}'"


def describe(key: str) -> str:
    return "its model" if key == "model" else f"its {key.rpartition('.')[2].replace('_', ' ')} ({key})"


# ----- monitor ------------------------------------------------------------------------------------
def check_monitor(cfg: DictConfig, task: type[Task], losses: Mapping[str, nn.Module]) -> None:
    """``monitor.mode`` is min or max; ``monitor.metric`` is a metric the task logs at validation (or a training one)."""
    monitor = cfg.get("monitor")
    if not isinstance(monitor, DictConfig):
        return
    mode = monitor.get("mode")
    if mode not in ("min", "max"):
        raise ConfigError(f"monitor.mode: must be min or max (got {mode!r})")
    metric = str(monitor.get("metric"))
    logged = task.validation_metrics(cfg, losses)
    if not logged or metric in logged or metric.startswith("train/"):
        return
    close = difflib.get_close_matches(metric, logged, n=len(logged), cutoff=0)
    raise ConfigError(
        f"monitor.metric: task '{task_name(task)}' logs no {metric!r} at validation, so the best checkpoint could "
        f"not be chosen; it logs {', '.join(close)}. Set monitor.metric to one of them"
    )
