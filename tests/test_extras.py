"""What a run shows and keeps as a Lightning + Hydra user expects: the config tree, train.log, plain progress lines
in redirected output, tags, eval.py on a checkpoint, paths rooted at the project, .env and configs/local/."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar

from losses.errors import ConfigError
from recipes.results.report import final_metrics, report
from recipes.run.callbacks import LogProgress, progress_bar
from recipes.run.evaluate import apply_overrides, freeze_hydra_values, overlay
from recipes.run.project import setup_project
from tests.helpers.configs import ROOT, compose_config
from train import train

TAGS = ["baseline", "ux-test"]


def python(script: str, *overrides: str, cwd: Path, data_dir: Path) -> subprocess.CompletedProcess:
    """``python <ROOT>/<script> *overrides`` from ``cwd``, output captured (so stdout is not a terminal)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "WANDB_MODE": "offline"}
    env.update(WANDB_SILENT="true", DATA_DIR=str(data_dir), OMP_NUM_THREADS=str(torch.get_num_threads()))
    return subprocess.run(
        [sys.executable, str(ROOT / script), *overrides], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir):
    """One smoke run with the progress bar on, started from a folder outside the project, output redirected."""
    root = tmp_path_factory.mktemp("ux")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    run = root / "run"
    result = python(
        "train.py",
        "debug=smoke",
        "model.widths=[8,16]",
        "trainer.enable_progress_bar=true",
        f"tags=[{','.join(TAGS)}]",
        f"hydra.run.dir={run}",
        cwd=elsewhere,
        data_dir=data_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run, result, elsewhere


def test_the_composed_config_is_printed_as_a_tree_and_saved_as_config_tree_log(smoke_run):
    run, result, _ = smoke_run
    saved = (run / "config_tree.log").read_text()
    for branch in ("├── task", "├── loss", "├── trainer", "└── settings"):
        assert branch in result.stdout and branch in saved
    assert "_target_: recipes.classification.ClassificationTask" in saved
    assert f"output_dir: {run}" in saved  # interpolations resolved


def test_train_log_holds_the_runs_log_lines_lightnings_included(smoke_run):
    run, _, _ = smoke_run
    lines = (run / "train.log").read_text().splitlines()
    assert len(lines) > 10
    text = "\n".join(lines)
    assert "[lightning.pytorch" in text and "Trainer.fit` stopped" in text  # Lightning's own lines reach the file
    assert "epoch 1/1 step 4/4 train/loss=" in text  # progress as log lines
    assert "test metrics: test/acc=" in text


def test_redirected_output_has_plain_progress_lines_and_no_carriage_returns(smoke_run):
    _, result, _ = smoke_run
    output = result.stdout + result.stderr
    assert "\r" not in output
    assert "epoch 1/1 step 1/4" in output and "epoch 1/1 validation val/acc=" in output


def test_the_run_folder_is_printed_at_the_start_and_at_the_end(smoke_run):
    run, result, _ = smoke_run
    lines = [line for line in result.stdout.splitlines() if f"run folder: {run}" in line]
    assert len(lines) == 2
    assert "checkpoints/" in lines[1] and "train.log" in lines[1]
    assert result.stdout.index(lines[0]) < result.stdout.index("Seed set to 0") < result.stdout.index(lines[1])


def test_a_run_started_from_another_folder_is_rooted_at_the_project(smoke_run):
    run, _, elsewhere = smoke_run
    saved = (run / "config_tree.log").read_text()
    assert f"root_dir: {ROOT}\n" in saved and f"log_dir: {ROOT}/logs\n" in saved
    assert not any(elsewhere.iterdir())  # nothing written where the command was started


def test_tags_reach_the_run_folder_and_the_report(smoke_run):
    run, _, _ = smoke_run
    assert (run / "tags.log").read_text().splitlines() == TAGS
    result = report(run)
    assert result["rows"][0]["tags"] == "baseline,ux-test"
    header = (run / "report.md").read_text().splitlines()[0]
    assert header.startswith("| seeds | tags | test/acc")


def test_the_run_records_its_commit_and_the_report_puts_it_in_runs_csv(smoke_run):
    run, _, _ = smoke_run
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit = (run / "commit.txt").read_text().strip()
    assert commit.removesuffix("-dirty") == head
    report(run)
    with open(run / "runs.csv") as f:
        (row,) = csv.DictReader(f)
    assert row["commit"] == commit and float(row["fit_seconds"]) > 0 and 0 <= float(row["test/acc"]) <= 1
    assert row["tags"] == "[baseline,ux-test]"  # overrides are columns, quoted where they hold commas


def test_eval_py_on_the_runs_checkpoint_reports_the_runs_test_metrics(smoke_run, data_dir):
    run, _, _ = smoke_run
    out = run.parent / "eval"
    result = python("eval.py", f"ckpt_path={run}/checkpoints/best.ckpt", f"hydra.run.dir={out}", cwd=ROOT, data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    trained, tested = final_metrics(run / "csv" / "metrics.csv"), final_metrics(out / "csv" / "metrics.csv")
    test_keys = sorted(k for k in trained if k.startswith("test/"))
    assert test_keys and test_keys == sorted(k for k in tested if k.startswith("test/"))
    for key in test_keys:
        assert tested[key] == pytest.approx(trained[key], abs=1e-6), key
    assert "was not logged" not in result.stdout + result.stderr  # no optimized_metric warning
    assert "test metrics: test/acc=" in (out / "eval.log").read_text()
    saved = (out / "config_tree.log").read_text()
    assert "task_name: classification" in saved and "fit: false" in saved  # the trained run's values, tested
    assert not (out / "checkpoints").exists()


def test_eval_keeps_the_trained_config_and_applies_what_the_command_line_changes():
    trained = {
        "task_name": "detection",
        "trainer": {"max_epochs": 5, "limit_test_batches": None},
        "seed": 3,
        "logger": {"csv": {"a": 1}},
    }
    base = {
        "task_name": "eval",
        "trainer": {"max_epochs": 12, "limit_test_batches": None},
        "seed": 0,
        "logger": {"csv": {"a": 1}, "wandb": {"b": 2}},
    }
    new = {
        "task_name": "eval",
        "trainer": {"max_epochs": 12, "limit_test_batches": 2},
        "seed": 0,
        "logger": {"csv": {"a": 1}},
    }  # `trainer.limit_test_batches=2 logger=csv seed=0`
    overlay(trained, base, new)
    apply_overrides(trained, new, ["trainer.limit_test_batches=2", "logger=csv", "seed=0"])
    assert trained == {
        "task_name": "detection",
        "trainer": {"max_epochs": 5, "limit_test_batches": 2},
        "seed": 0,
        "logger": {"csv": {"a": 1}},
    }
    apply_overrides(trained, new, ["~seed"])
    assert "seed" not in trained


def test_eval_freezes_hydra_values_of_the_trained_config_to_the_training_run():
    from omegaconf import OmegaConf

    hydra_cfg = OmegaConf.create({"runtime": {"choices": {"task": "detection"}}, "sweep": {"dir": "/s"}})
    frozen = freeze_hydra_values({"task_name": "${hydra:runtime.choices.task}", "x": ["${hydra:sweep.dir}/t${seed}"]}, hydra_cfg)
    assert frozen == {"task_name": "detection", "x": ["/s/t${seed}"]}


def test_enforce_tags_refuses_a_run_without_tags_before_any_data(smoke_config):
    with pytest.raises(ConfigError, match=r"tags: none given.*tags=\[baseline\]"):
        train(smoke_config("extras.enforce_tags=true", "data.data_dir=/nonexistent"))


def test_tags_are_appended_to_the_wandb_tags_each_once(make_config):
    cfg = make_config("logger=wandb", "loss=focal", "tags=[focal,mine]")
    assert list(cfg.logger.wandb.tags) == ["classification", "focal", "mine"]


def test_a_terminal_gets_a_rich_bar_and_a_file_gets_log_lines(monkeypatch):
    class Terminal:
        def isatty(self) -> bool:
            return True

    assert isinstance(progress_bar(refresh_rate=5), LogProgress)  # pytest captures stdout: not a terminal
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert isinstance(progress_bar(refresh_rate=5), RichProgressBar)


def test_dotenv_sets_variables_that_the_environment_does_not_and_the_root_is_the_scripts_folder(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("UX_TEST_KEY=from-dotenv\nUX_TEST_SET=from-dotenv\n")
    monkeypatch.setenv("UX_TEST_SET", "from-environment")
    monkeypatch.delenv("UX_TEST_KEY", raising=False)
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    try:
        assert setup_project(tmp_path / "train.py") == tmp_path
        assert os.environ["UX_TEST_KEY"] == "from-dotenv" and os.environ["UX_TEST_SET"] == "from-environment"
        assert os.environ["PROJECT_ROOT"] == str(tmp_path)
    finally:
        os.environ.pop("UX_TEST_KEY", None)


def test_configs_local_default_is_merged_when_it_exists(tmp_path, data_dir):
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "default.yaml").write_text("# @package _global_\nseed: 123\ntrainer:\n  max_epochs: 7\n")
    cfg = compose_config([f"hydra.searchpath=[file://{tmp_path}]"], tmp_path / "run", data_dir)
    assert cfg.seed == 123 and cfg.trainer.max_epochs == 7
    assert compose_config([], tmp_path / "run", data_dir).seed == 0  # no local/default.yaml: nothing changes
