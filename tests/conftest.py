"""Shared fixtures: compose the project's configs in-process, with every output under ``tmp_path``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from tests.helpers.configs import compose_config

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
