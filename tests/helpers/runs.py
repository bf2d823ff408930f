"""Runs for tests: ``python train.py`` in a subprocess as a user runs it, and the weights a run saved."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.helpers.configs import ROOT


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def run_train(*overrides: str, cwd: Path = ROOT, env_extra: dict[str, str | None] | None = None, timeout: int = 300):
    """``python train.py *overrides`` as a user runs it, W&B offline unless ``env_extra`` says otherwise (None unsets)."""
    env: dict[str, str | None] = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "WANDB_MODE": "offline"}
    # the same thread count as this process: CPU reductions split by thread, and the resume test compares bits
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    env.update({"WANDB_SILENT": "true", **(env_extra or {})})
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
