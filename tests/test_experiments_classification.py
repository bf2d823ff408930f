"""The classification reference experiments: their sweeps cover every point, and each runs as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from recipes.results.report import main as report_main
from recipes.run.checks import check_config
from tests.helpers.configs import CONFIGS, ROOT

EXPERIMENTS = {"label_smoothing_calibration": "calibration_method", "class_imbalance": "imbalance_method"}
SMOKE = ["debug=smoke", "model.hidden=[16]", "callbacks=none", "seed=0"]


def sweep_params(experiment: str) -> dict[str, str]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    return {str(k): str(v) for k, v in cfg.hydra.sweeper.params.items()}


def methods(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / "experiment" / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_the_sweep_covers_every_method_with_five_seeds(experiment):
    params = sweep_params(experiment)
    group = EXPERIMENTS[experiment]
    assert sorted(params[f"experiment/{group}"].split(",")) == methods(group)
    assert params["seed"] == "0,1,2,3,4"


@pytest.mark.parametrize(("experiment", "method"), [(e, m) for e, g in EXPERIMENTS.items() for m in methods(g)])
def test_every_method_composes_and_passes_the_check(make_config, experiment, method):
    cfg = make_config(f"experiment={experiment}", f"experiment/{EXPERIMENTS[experiment]}={method}")
    built = check_config(cfg)["loss"]
    assert cfg.data.split_seed == cfg.seed and cfg.model._target_.endswith("MLP")
    assert built.name == cfg.loss.name


def test_inverse_frequency_weights_follow_the_imbalance(make_config):
    for imbalance in (10, 100):
        cfg = make_config(
            "experiment=class_imbalance", "experiment/imbalance_method=inverse_frequency", f"data.imbalance={imbalance}"
        )
        weight = check_config(cfg)["loss"].weight
        assert weight.numel() == 10 and float(weight[-1] / weight[0]) == pytest.approx(imbalance)


def test_label_smoothing_points_smooth_by_005_and_01(make_config):
    amounts = {}
    for method in ("ls05", "ls10"):
        cfg = make_config("experiment=label_smoothing_calibration", f"experiment/calibration_method={method}")
        amounts[method] = check_config(cfg)["loss"].label_smoothing
    assert amounts == {"ls05": 0.05, "ls10": 0.1}


def run_experiment(tmp_path, *overrides: str, smoke: tuple[str, ...] = tuple(SMOKE)) -> subprocess.CompletedProcess:
    """``train.py -m`` in a subprocess at smoke size, as a user runs an experiment, with its sweep folder at ``tmp_path``."""
    return subprocess.run(
        [sys.executable, "train.py", "-m", *overrides, *smoke, f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "DATA_DIR": str(tmp_path.parent / "data")},
    )


@pytest.mark.parametrize(
    ("experiment", "points", "columns"),
    [
        (
            "label_smoothing_calibration",
            ["experiment/calibration_method=ce,ls10", "data.label_noise=0.2"],
            {"test/acc", "test/ece", "test/nll", "test/conf", "test/ece_ts", "test/nll_ts", "test/temperature"},
        ),
        (
            "class_imbalance",
            ["experiment/imbalance_method=ce,class_balanced", "data.imbalance=100"],
            {"test/acc", "test/ece", "test/nll", "test/conf", "test/tail_recall", "test/recall_9"},
        ),
    ],
)
def test_experiment_runs_as_a_multirun_at_smoke_size_and_reports(tmp_path, experiment, points, columns):
    sweep = tmp_path / experiment
    result = run_experiment(sweep, f"experiment={experiment}", *points)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(sweep.glob("*/csv/metrics.csv"))) == 2

    out = report_main([str(sweep)])
    group = f"experiment/{EXPERIMENTS[experiment]}"
    assert out["params"] == [group] and len(out["rows"]) == 2
    assert {c.baseline for c in out["comparisons"]} == {f"{group}=ce"}  # the config's report.baseline
    for row in out["rows"]:
        assert row["seeds"] == 1 and columns <= set(row)
        assert 0.0 <= row["test/acc"][0] <= 1.0
