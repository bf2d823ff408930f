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


def folder_classes(root: str) -> int:
    """``${folder_classes:${data.root}}``: the class folders of ``root/train`` (data=image_folder), counted."""
    from recipes.data.image_folder import folder_classes as count

    return count(root)


def folder_channels(root: str) -> int:
    """``${folder_channels:${data.root}}``: 1 when every image of the folder is grey, else 3."""
    from recipes.data.image_folder import folder_channels as channels

    return channels(root)


def table_features(path: str, target: str, features: ListConfig | None, categorical: ListConfig | None) -> int:
    """``${table_features:${data.path},${data.target},${data.features},${data.categorical}}``: the encoded width (data=csv)."""
    from recipes.data.table import table_features as width

    return width(path, target, features, categorical)


def table_classes(path: str, target: str) -> int:
    """``${table_classes:${data.path},${data.target}}``: the distinct values of the target column (data=csv)."""
    from recipes.data.table import table_classes as count

    return count(path, target)


def resolver_error(err: Exception) -> Exception:
    """The ConfigError a resolver raised inside ``err`` (OmegaConf wraps it in InterpolationResolutionError), else ``err``."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, ConfigError):
        cause = cause.__context__
    return cause or err


def mask_classes(root: str | None, ignore_index: int = 255) -> int:
    """``${mask_classes:${data.root},${data.ignore_index}}``: the classes found in a mask folder's training masks."""
    from recipes.data.mask_folder import found_classes

    return found_classes(root, ignore_index)


def voc_classes(root: str | None, classes: list[str] | None) -> int:
    """``${voc_classes:${data.root},${data.classes}}``: the number of classes of a VOC folder, given or read from it."""
    from recipes.data.voc import class_count

    return class_count(root, classes)


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
    "folder_classes": folder_classes,
    "folder_channels": folder_channels,
    "table_features": table_features,
    "table_classes": table_classes,
    "mask_classes": mask_classes,
    "voc_classes": voc_classes,
}


def register_resolvers() -> None:
    """Register every resolver of this module (idempotent)."""
    for name, resolver in RESOLVERS.items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)
