"""The OmegaConf resolvers the configs use; registered when ``recipes`` is imported, before Hydra composes."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from losses.errors import ConfigError


def scaled(scale: str, cpu: object, full: object) -> object:
    """``${scaled:${scale},CPU_VALUE,FULL_VALUE}``: experiment sizes for this CPU or for a GPU (``scale=full``)."""
    if scale not in ("cpu", "full"):
        raise ConfigError(f"scale: must be cpu or full (got {scale!r})")
    return full if scale == "full" else cpu


def inverse_frequency(imbalance: float | None, num_classes: int) -> ListConfig | None:
    """``${inverse_frequency:${data.imbalance},${data.num_classes}}``: class weights ``1 / n_c`` of the long tail, mean 1."""
    from recipes.data.variants import inverse_frequency_weights

    weights = inverse_frequency_weights(imbalance, num_classes)
    return None if weights is None else OmegaConf.create(weights)  # a node, so OmegaConf.resolve can store it


def unused_subdir(name: str, folder: str) -> str:
    """``${unused_subdir:.hydra,FOLDER}``: ``name`` if ``folder/name`` does not exist yet, else the first free
    ``name.1``, ``name.2``, ... (a run resumed in its folder keeps the config the first run saved)."""
    candidate, n = name, 0
    while (Path(folder) / candidate).exists():
        n += 1
        candidate = f"{name}.{n}"
    return candidate


def loss_name(loss: DictConfig | None) -> str:
    """``${loss_name:${loss}}``: a registered loss's ``name``, else the class name of the user's ``_target_``."""
    if not loss:
        return "none"
    if "name" in loss:
        return str(loss.name)
    return str(loss.get("_target_", "loss")).rpartition(".")[2]


def concat(*lists: list | None) -> ListConfig:
    """``${concat:[a,b],${tags}}``: the lists one after the other, each item once (the first time it appears)."""
    items: list = []
    for item in (item for part in lists for item in part or []):
        if item not in items:
            items.append(item)
    return OmegaConf.create(items)


def search_params(name: str, slot: str, lr_too: bool, lr: float) -> DictConfig:
    """``${search_params:${loss_name:${loss}},loss,${tune.lr},${task.optimizer.lr}}``: ``hydra.sweeper.params`` from
    the search space the loss declares (recipes/run/search.py)."""
    from recipes.run.search import search_params as params

    return OmegaConf.create(params(name, slot, lr_too, lr))


RESOLVERS = {
    "loss_name": loss_name,
    "search_params": search_params,
    "scaled": scaled,
    "inverse_frequency": inverse_frequency,
    "unused_subdir": unused_subdir,
    "concat": concat,
}


def register_resolvers() -> None:
    """Register every resolver of this module (idempotent)."""
    for name, resolver in RESOLVERS.items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)
