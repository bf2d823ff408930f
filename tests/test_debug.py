"""The ``debug=`` presets (configs/debug/): each runs, and does what its name says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

from recipes.run.build import callbacks
from tests.helpers.configs import CONFIGS
from tests.helpers.runs import run_train
from train import train

TINY = ("model=mlp", "model.hidden=[16]", "data.batch_size=16", "data.eval_batch_size=32", "trainer.enable_progress_bar=false")
FEW = ("trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1")  # presets of one epoch


def timing(run: Path) -> dict[str, float]:
    return json.loads((run / "timing.json").read_text())


def test_every_preset_is_tested_here():
    presets = {p.stem for p in (CONFIGS / "debug").glob("*.yaml")}
    assert presets == {"default", "fdr", "fast", "limit", "overfit", "profiler", "smoke"}


def test_debug_default_is_one_epoch_on_one_cpu_process_with_anomaly_detection(make_config, tmp_path):
    cfg = make_config("debug=default", "trainer=ddp_cpu", *TINY, *FEW)
    trainer = cfg.trainer
    assert (trainer.max_epochs, trainer.accelerator, trainer.devices, trainer.strategy) == (1, "cpu", 1, "auto")
    assert trainer.detect_anomaly is True and cfg.data.num_workers == 0
    assert list(cfg.logger) == ["csv"]
    train(cfg)
    assert timing(tmp_path)["epochs"] == 1 and timing(tmp_path)["steps"] == 3


def test_debug_default_turns_on_debug_logs_of_this_projects_modules():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["debug=default"], return_hydra_config=True)
    assert list(cfg.hydra.verbose) == ["train", "recipes", "losses"]


@pytest.mark.parametrize("preset", ["fdr", "fast"])
def test_fast_dev_run_runs_one_batch_and_writes_no_metrics_or_best_checkpoint(smoke_config, preset, tmp_path):
    """The README's `debug=fast` crashed: LearningRateMonitor refused a trainer without a logger."""
    metrics = train(smoke_config(f"debug={preset}", *TINY))
    assert timing(tmp_path)["steps"] == 1
    assert "test/acc" in metrics and "val/acc" in metrics
    assert not (tmp_path / "csv" / "metrics.csv").exists()  # Lightning swaps the loggers for a DummyLogger
    assert not (tmp_path / "checkpoints" / "best.ckpt").exists()


def test_fast_dev_run_without_any_logger_leaves_out_the_learning_rate_monitor(smoke_config, tmp_path):
    cfg = smoke_config("debug=fdr", "~logger", *TINY)
    built = callbacks(cfg)
    assert not any(isinstance(c, LearningRateMonitor) for c in built)
    assert any(isinstance(c, ModelCheckpoint) for c in built)  # the others stay
    train(cfg)
    assert timing(tmp_path)["steps"] == 1


def test_the_learning_rate_monitor_stays_when_there_is_a_logger(smoke_config):
    assert any(isinstance(c, LearningRateMonitor) for c in callbacks(smoke_config(*TINY)))


def test_debug_limit_runs_three_epochs_of_five_batches(make_config, tmp_path):
    train(make_config("debug=limit", *TINY))
    assert timing(tmp_path) | {"fit_seconds": 0} == {"fit_seconds": 0, "epochs": 3, "steps": 15}
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()


def test_debug_overfit_trains_on_the_same_three_batches_every_epoch(make_config, tmp_path):
    cfg = make_config("debug=overfit", "trainer.max_epochs=4", "task.optimizer.lr=0.01", *TINY)
    assert cfg.trainer.overfit_batches == 3
    train(cfg)
    assert timing(tmp_path)["steps"] == 12
    rows = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = header.index("train/loss_epoch")
    losses = [float(r.split(",")[column]) for r in rows[1:] if r.split(",")[column]]
    assert len(losses) == 4 and losses[-1] < losses[0]  # the same batches again: the loss goes down


def test_debug_profiler_writes_the_simple_profilers_report_to_the_run_folder(make_config, tmp_path):
    train(make_config("debug=profiler", *TINY, *FEW))
    report = (tmp_path / "fit-profile.txt").read_text()
    assert "FIT Profiler Report" in report and "run_training_batch" in report
    assert (tmp_path / "test-profile.txt").is_file()


def test_debug_smoke_is_unchanged(smoke_config, tmp_path):
    train(smoke_config(*TINY))
    assert timing(tmp_path)["steps"] == 4


def test_the_readmes_debug_fast_runs_through_train_py_with_debug_logs(tmp_path, data_dir):
    result = run_train(
        "debug=fast",
        "model=mlp",
        "model.hidden=[16]",
        f"hydra.run.dir={tmp_path}",
        env_extra={"DATA_DIR": str(data_dir), "WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "train.log").read_text()
    assert "[recipes.run.build][DEBUG] - callbacks: ModelCheckpoint, ModelCheckpoint, LearningRateMonitor" in log
