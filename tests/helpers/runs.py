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


def killed_and_resumed(run: tuple[str, ...], tmp_path: Path, data_dir: Path, step: int = 10) -> tuple[dict, dict, dict]:
    """``run`` SIGKILLed at ``step`` in ``tmp_path/killed`` then resumed from its last checkpoint, and run uninterrupted
    in ``tmp_path/uninterrupted``: the killed run's last checkpoint, and the metrics of the resumed and the whole
    run; both end with the same weights (asserted)."""
    from tests.helpers.configs import compose_config
    from train import train

    killed, uninterrupted = tmp_path / "killed", tmp_path / "uninterrupted"
    kill = ("+callbacks.crash._target_=tests.crash.KillAtStep", f"+callbacks.crash.step={step}")
    result = run_train(*run, f"hydra.run.dir={killed}", *kill, env_extra={"DATA_DIR": str(data_dir)})
    assert result.returncode == -9, result.stderr[-3000:]  # SIGKILL
    saved = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = train(compose_config([*run, "ckpt_path=last"], killed, data_dir))
    expected = train(compose_config(list(run), uninterrupted, data_dir))
    ours, theirs = weights(killed / "checkpoints" / "last.ckpt"), weights(uninterrupted / "checkpoints" / "last.ckpt")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    return saved, resumed, expected
