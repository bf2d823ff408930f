"""Task recipes: one LightningModule per task, with loss slots checked against the config."""

from omegaconf import ListConfig, OmegaConf


def _scaled(scale: str, cpu: object, full: object) -> object:
    """``${scaled:${scale},CPU_VALUE,FULL_VALUE}``: experiment sizes for this CPU or for a GPU (``scale=full``)."""
    if scale not in ("cpu", "full"):
        from losses.errors import ConfigError

        raise ConfigError(f"scale: must be cpu or full (got {scale!r})")
    return full if scale == "full" else cpu


def _inverse_frequency(imbalance: float | None, num_classes: int) -> ListConfig | None:
    """``${inverse_frequency:${data.imbalance},${data.num_classes}}``: class weights ``1 / n_c`` of the long tail, mean 1."""
    from recipes.data.variants import inverse_frequency_weights

    weights = inverse_frequency_weights(imbalance, num_classes)
    return None if weights is None else OmegaConf.create(weights)  # a node, so OmegaConf.resolve can store it


if not OmegaConf.has_resolver("scaled"):
    OmegaConf.register_new_resolver("scaled", _scaled)
if not OmegaConf.has_resolver("inverse_frequency"):
    OmegaConf.register_new_resolver("inverse_frequency", _inverse_frequency)
