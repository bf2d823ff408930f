"""Sweeps as a user runs them: a grid with seeds, an Optuna search, and the report over their folders."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import yaml

from recipes.results.report import main as report_main
from recipes.results.report import mean_std
from tests.helpers.configs import ROOT

SMOKE = ["debug=smoke", "model=mlp", "model.hidden=[32]", "callbacks=none"]


def run_sweep(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", "-m", *SMOKE, f"hydra.sweep.dir={tmp_path}", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "WANDB_MODE": "offline", "DATA_DIR": str(tmp_path.parent / "data")},
    )


def test_grid_sweep_with_seeds_and_its_report(tmp_path):
    sweep = tmp_path / "grid"
    result = run_sweep(sweep, "loss=focal", "loss.gamma=0,2", "seed=0,1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(sweep.glob("*/csv/metrics.csv"))) == 4

    out = report_main([str(sweep), "--metric", "val/acc"])
    assert out["params"] == ["loss.gamma"]
    rows = {row["loss.gamma"]: row for row in out["rows"]}
    assert set(rows) == {"0", "2"} and all(row["seeds"] == 2 for row in rows.values())
    mean, std = rows["2"]["val/acc"]
    assert 0.0 <= mean <= 1.0 and std >= 0.0
    assert out["best"] in out["rows"]
    assert (sweep / "report.md").read_text().count("\n") == 4  # header, rule, two points
    assert (sweep / "report.csv").exists() and (sweep / "report_loss.gamma.png").exists()


def test_optuna_search_runs_three_trials(tmp_path):
    sweep = tmp_path / "optuna"
    result = run_sweep(
        sweep, "hparams_search=focal_optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(sweep.glob("*/csv/metrics.csv"))) == 3
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert 0.0 <= best["best_value"] <= 1.0
    assert set(best["best_params"]) == {"loss.gamma", "loss.alpha"}
    out = report_main([str(sweep)])
    assert out["metric"] == "val/acc" and len(out["rows"]) == 3


def fake_run(folder, overrides: list[str], metrics: dict[str, float]) -> None:
    """A finished run's folder as train.py leaves it: overrides, config and a metrics.csv."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / "csv").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"optimized_metric": "test/map", "monitor": {"mode": "max"}}))
    (folder / "csv" / "metrics.csv").write_text(
        "epoch,step," + ",".join(metrics) + "\n0,9," + ",".join(map(str, metrics.values())) + "\n"
    )


def test_report_orders_points_by_value_and_draws_a_line_per_other_axis(tmp_path):
    job = 0
    for seed_folder in ("s0", "s1"):  # two sweeps under one parent, one per seed: read together
        for gamma in ("10", "2", "0.5"):
            for box in ("giou", "ciou"):
                score = float(gamma) / 10 + (0.1 if box == "ciou" else 0.0) + int(seed_folder[1]) / 100
                fake_run(
                    tmp_path / seed_folder / str(job),
                    [f"loss.gamma={gamma}", f"box_loss={box}", f"seed={seed_folder[1]}"],
                    {"test/map": score},
                )
                job += 1
    import matplotlib.image

    out = report_main([str(tmp_path)])
    assert out["params"] == ["box_loss", "loss.gamma"]
    order = [(r["box_loss"], r["loss.gamma"]) for r in out["rows"]]
    assert order == [("ciou", "0.5"), ("ciou", "2"), ("ciou", "10"), ("giou", "0.5"), ("giou", "2"), ("giou", "10")]
    assert all(r["seeds"] == 2 for r in out["rows"])
    assert out["best"]["box_loss"] == "ciou" and out["best"]["loss.gamma"] == "10"
    assert out["best"]["test/map"][0] == pytest.approx(1.105)
    assert out["best"]["test/map"][1] == pytest.approx(0.01 / math.sqrt(2))  # sample std of 1.10 and 1.11
    assert {p.name for p in out["plots"]} == {"report_box_loss.png", "report_loss.gamma.png"}
    assert matplotlib.image.imread(out["plots"][0]).shape[-1] in (3, 4)


def test_report_std_is_the_sample_standard_deviation_over_seeds():
    """ddof 1: with seeds 0.1, 0.2, 0.6 the std is sqrt(0.14 / 2), not the population's sqrt(0.14 / 3)."""
    assert mean_std([0.1, 0.2, 0.6]) == pytest.approx((0.3, math.sqrt(0.07)))
    assert mean_std([0.4]) == (0.4, 0.0)  # one seed: no spread to estimate
