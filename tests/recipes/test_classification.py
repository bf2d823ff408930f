"""The classification recipe trains end to end on CPU, learns, logs, and resumes."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import losses
from losses import ConfigError
from recipes.run.checks import check_config
from train import train

TINY_MODEL = ("model.widths=[8,16]",)


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_smoke_fit_reports_accuracy_nll_and_ece(smoke_config, tmp_path):
    metrics = train(smoke_config(*TINY_MODEL))
    for key in ("test/acc", "test/nll", "test/ece", "val/acc", "train/loss_epoch"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_a_short_run_learns_well_above_chance(make_config):
    cfg = make_config(
        "logger=csv",
        "model=mlp",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
        "trainer.limit_train_batches=20",
        "data.batch_size=64",
    )
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.6  # chance is 0.1
    assert metrics["test/nll"] < math.log(10)  # below the loss of a uniform guess
    assert metrics["test/nll"] == pytest.approx(metrics["test/loss"], rel=1e-5)  # ce, no smoothing: the loss is the NLL


def test_resume_from_last_checkpoint_continues_the_epoch_count(smoke_config, tmp_path, data_dir):
    from tests.helpers.configs import compose_config

    first = tmp_path / "first"
    train(compose_config(["debug=smoke", *TINY_MODEL, "task.scheduler=null"], first, data_dir))
    second = tmp_path / "second"
    cfg = compose_config(
        ["debug=smoke", *TINY_MODEL, "task.scheduler=null", "trainer.max_epochs=2", f"ckpt_path={first}/checkpoints/last.ckpt"],
        second,
        data_dir,
    )
    train(cfg)
    epochs = {int(row["epoch"]) for row in read_metrics(second) if row.get("train/loss_epoch")}
    assert epochs == {1}  # epoch 0 came from the checkpoint, only epoch 1 was trained


def test_metrics_reach_the_csv_file_and_the_wandb_offline_run(smoke_config, tmp_path):
    from recipes.results.wandb_offline import history, run_files, wait_until_closed
    from recipes.run.loggers import finish_wandb

    try:
        train(smoke_config(*TINY_MODEL, "logger=wandb", "logger.wandb.mode=offline"))
    finally:
        finish_wandb()  # flushes the run file, as train.py's main does
    csv_rows = read_metrics(tmp_path)
    assert any(row.get("val/acc") for row in csv_rows)
    assert any(row.get("test/acc") for row in csv_rows)
    files = run_files(tmp_path / "wandb")
    assert len(files) == 1
    assert wait_until_closed(files[0]), "the W&B run never wrote its exit record"
    logged = {key for row in history(files[0]) for key in row}
    assert {"val/acc", "test/acc", "train/loss"} <= logged
    test_rows = [row for row in history(files[0]) if "test/acc" in row]
    csv_test = next(float(row["test/acc"]) for row in csv_rows if row.get("test/acc"))
    assert test_rows[-1]["test/acc"] == csv_test


def test_class_balanced_counts_its_classes_from_the_training_labels(data_dir):
    from recipes.classification import ClassificationTask
    from recipes.data.images import ImageDataModule
    from recipes.models.mlp import MLP

    dm = ImageDataModule(data_dir=str(data_dir))
    dm.setup("fit")
    loss = losses.build("class_balanced", beta=0.99)
    task = ClassificationTask(MLP(), {"loss": loss}, optimizer=torch.optim.SGD)
    task.trainer = SimpleNamespace(datamodule=dm)
    task.setup("fit")
    expected = torch.bincount(dm.splits["train"][1], minlength=10)
    assert loss.samples_per_class == expected.tolist()
    assert sum(loss.samples_per_class) == len(dm.splits["train"][1])


def test_class_balanced_with_counts_from_data_trains_end_to_end(smoke_config):
    metrics = train(smoke_config(*TINY_MODEL, "loss=class_balanced", "loss.base=focal"))
    assert math.isfinite(metrics["train/loss_epoch"]) and math.isfinite(metrics["test/acc"])


def test_class_balanced_bad_beta_is_refused_at_check_time(make_config):
    with pytest.raises(ConfigError, match=r"loss 'class_balanced': beta must be < 1 \(got 1.0\)"):
        check_config(make_config("loss=class_balanced", "loss.beta=1.0"))


def test_tail_recall_reports_the_rarest_training_classes_and_their_mean(smoke_config):
    metrics = train(smoke_config(*TINY_MODEL, "data.imbalance=10", "task.tail_classes=3", "trainer.limit_test_batches=null"))
    recalls = {key: value for key, value in metrics.items() if key.startswith("test/recall_")}
    assert set(recalls) == {"test/recall_7", "test/recall_8", "test/recall_9"}  # n_c falls with c: 7, 8, 9 are rarest
    assert all(0 <= value <= 1 for value in recalls.values())
    assert metrics["test/tail_recall"] == pytest.approx(sum(recalls.values()) / 3)


def test_more_tail_classes_than_classes_is_refused(make_config):
    with pytest.raises(ConfigError, match=r"tail_classes must be at most num_classes=10 \(got 11\)"):
        train(make_config("task.tail_classes=11"))
