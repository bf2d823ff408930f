"""train.py as a user runs it: Hydra multirun over losses, and the value returned to sweepers."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.configs import ROOT


def test_multirun_over_three_losses_writes_one_run_each(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "debug=smoke",
            "model.widths=[8,16]",
            "loss=ce,label_smoothing,focal",
            f"hydra.sweep.dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "WANDB_MODE": "offline", "DATA_DIR": str(tmp_path / "data")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1", "2"):
        assert (tmp_path / job / "csv" / "metrics.csv").exists()
    overrides = [(tmp_path / job / ".hydra" / "overrides.yaml").read_text() for job in ("0", "1", "2")]
    assert any("loss=focal" in o for o in overrides) and any("loss=label_smoothing" in o for o in overrides)
