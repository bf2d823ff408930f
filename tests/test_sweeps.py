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


# ----- failed jobs ------------------------------------------------------------------------------------
def test_a_failed_grid_job_writes_its_error_the_sweep_goes_on_and_ends_with_one_line_per_failure(tmp_path):
    sweep = tmp_path / "grid"
    result = run_sweep(sweep, "loss=focal", "loss.gamma=-1,2")  # job 0 is refused, job 1 trains
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert (sweep / "0" / "error.txt").read_text() == "error: loss 'focal': gamma must be >= 0 (got -1)\n"
    assert (sweep / "1" / "csv" / "metrics.csv").exists() and not (sweep / "1" / "error.txt").exists()
    assert result.stderr.rstrip().splitlines()[-2:] == [
        f"error: 1 job of the sweep in {sweep} failed (each failed job's folder holds its error.txt):",
        f"  job 0 ({' '.join(SMOKE)} loss=focal loss.gamma=-1): error: loss 'focal': gamma must be >= 0 (got -1)",
    ]


def test_an_optuna_search_whose_metric_is_never_logged_fails_each_trial_at_its_first_validation(tmp_path):
    sweep = tmp_path / "optuna"
    result = run_sweep(
        sweep,
        "hparams_search=focal_optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "optimized_metric=val/nope",
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    message = (
        "error: optimized_metric: 'val/nope' is not among the metrics this run logged (train/loss, val/acc, val/conf, "
        "val/ece, val/loss, val/nll); set optimized_metric=<one of them> (what a sweep optimises: a validation metric, "
        "e.g. optimized_metric=val/acc)"
    )
    for job in ("0", "1"):
        assert (sweep / job / "error.txt").read_text() == message + "\n"
        header = (sweep / job / "csv" / "metrics.csv").read_text().splitlines()[0]
        assert "val/acc" in header and "test/acc" not in header  # it stopped after validating, before testing
    assert not (sweep / "optimization_results.yaml").exists()
    summary = result.stderr.rstrip().splitlines()[-3:]
    assert summary[0] == f"error: 2 jobs of the sweep in {sweep} failed (each failed job's folder holds its error.txt):"
    assert [line.startswith(f"  job {n} (loss.gamma=") and line.endswith(message) for n, line in enumerate(summary[1:])] == [
        True,
        True,
    ]


def fake_job(tmp_path, sweeper: str, err: BaseException):
    """What Hydra hands ``RecordFailures.on_job_end`` for job 3 of a sweep in ``tmp_path``, failed with ``err``."""
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    (tmp_path / "3").mkdir()
    hydra = {"runtime": {"output_dir": str(tmp_path / "3")}, "job": {"num": 3}, "sweep": {"dir": str(tmp_path)}}
    config = OmegaConf.create({"hydra": {**hydra, "sweeper": {"_target_": sweeper}}})
    config.hydra.mode = RunMode.MULTIRUN
    return config, JobReturn(overrides=["seed=3"], status=JobStatus.FAILED, _return_value=err)


def test_an_unexpected_exception_in_a_job_keeps_its_traceback_in_error_txt_and_the_sweeper_sees_one_line(tmp_path, capsys):
    from hydra.core.utils import JobStatus

    from recipes.run.launch import JobFailed, RecordFailures

    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError as caught:
        err = caught
    config, job = fake_job(tmp_path, "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", err)
    recorder = RecordFailures()
    recorder.on_multirun_start(config)
    recorder.on_job_end(config, job)
    text = (tmp_path / "3" / "error.txt").read_text()
    assert text.startswith("RuntimeError: boom\n\nTraceback (most recent call last):")
    assert 'raise RuntimeError("boom\\nsecond line")' in text
    assert job.status == JobStatus.FAILED and isinstance(job._return_value, JobFailed)  # Optuna records the failure
    assert str(job._return_value) == f"job 3 (seed=3): RuntimeError: boom (traceback in {tmp_path / '3' / 'error.txt'})"
    with pytest.raises(SystemExit) as exit_:
        recorder.on_multirun_end(config)
    assert exit_.value.code == 1
    assert capsys.readouterr().err.splitlines()[1] == f"  {job._return_value}"
    recorder.report_at_exit()  # already reported: nothing printed twice
    assert capsys.readouterr().err == ""


def test_the_basic_sweepers_failed_job_is_recorded_and_handed_back_as_done_so_the_other_jobs_run(tmp_path):
    from hydra.core.utils import JobStatus

    from losses.errors import ConfigError
    from recipes.run.launch import BASIC_SWEEPER, RecordFailures

    config, job = fake_job(tmp_path, BASIC_SWEEPER, ConfigError("data.batch_size: must be >= 1 (got 0)"))
    recorder = RecordFailures()
    recorder.on_multirun_start(config)
    recorder.on_job_end(config, job)
    assert job.status == JobStatus.COMPLETED and job.return_value is None
    assert recorder.failures() == ["job 3 (seed=3): error: data.batch_size: must be >= 1 (got 0)"]
    recorder.reported = True  # nothing to print when the test process exits
