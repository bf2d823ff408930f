"""Shared fixtures: compose the project's configs in-process, with every output under ``tmp_path``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

os.environ.setdefault("WANDB_MODE", "offline")  # tests never reach the network
os.environ.setdefault("WANDB_SILENT", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` on two cores: one thread per worker (and its subprocesses) instead of two each, which
    # oversubscribes the cores; OpenMP's waiting threads then slow small CPU runs many times over
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder per test process, so the mnist5k cache is parsed once."""
    return tmp_path_factory.mktemp("data")


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


@pytest.fixture
def make_config(tmp_path: Path, data_dir: Path) -> Callable[..., DictConfig]:
    """``make_config("loss=focal", ...)``: a composed config whose run folder is ``tmp_path``."""

    def make(*overrides: str) -> DictConfig:
        return compose_config(list(overrides), tmp_path, data_dir)

    return make


@pytest.fixture
def smoke_config(make_config: Callable[..., DictConfig]) -> Callable[..., DictConfig]:
    """A composed config for a few CPU steps (``debug=smoke``), plus extra overrides."""

    def make(*overrides: str) -> DictConfig:
        return make_config("debug=smoke", *overrides)

    return make
