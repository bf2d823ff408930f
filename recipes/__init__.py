"""Task recipes: one LightningModule per task, with loss slots checked against the config."""

from omegaconf import OmegaConf


def _scaled(scale: str, cpu: object, full: object) -> object:
    """``${scaled:${scale},CPU_VALUE,FULL_VALUE}``: experiment sizes for this CPU or for a GPU (``scale=full``)."""
    if scale not in ("cpu", "full"):
        from losses.errors import ConfigError

        raise ConfigError(f"scale: must be cpu or full (got {scale!r})")
    return full if scale == "full" else cpu


if not OmegaConf.has_resolver("scaled"):
    OmegaConf.register_new_resolver("scaled", _scaled)
