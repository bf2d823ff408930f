"""What the benchmarks share: composing the project's config outside a Hydra app, and GPU timing."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def compose_config(overrides: list[str], output_dir: str | None = None) -> DictConfig:
    """``configs/train.yaml`` composed with ``overrides``, resolvable like inside ``train.py``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = output_dir or tempfile.mkdtemp(prefix="bench-")
        del cfg.hydra
    return cfg


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Wall-clock seconds between ``start`` and ``stop``, synchronising the device at both ends."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.begin, self.seconds = device, 0.0, 0.0

    def start(self) -> None:
        synchronize(self.device)
        self.begin = time.perf_counter()

    def stop(self) -> float:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self.begin
        return self.seconds
