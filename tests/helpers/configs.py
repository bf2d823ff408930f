"""The repository's folders, and its configs composed in-process as ``train.py`` composes them."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


def compose_config(overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    """Compose ``configs/train.yaml`` with ``overrides`` as train.py would, writing under ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
        cfg.paths.data_dir = str(data_dir)
        del cfg.hydra
    return cfg
