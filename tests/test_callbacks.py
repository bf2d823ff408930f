"""The ``callbacks=`` options (configs/callbacks/): each composes with ``default`` and does its job in a run."""

from __future__ import annotations

import json

from lightning.pytorch.callbacks import EarlyStopping, ModelSummary, ProgressBar, RichProgressBar

from recipes.run.build import callbacks, instantiate
from train import train

TINY = ("model=mlp", "model.hidden=[16]", "data.batch_size=16", "data.eval_batch_size=32")


def of_type(built: list, kind: type) -> list:
    return [c for c in built if isinstance(c, kind)]


def test_options_listed_after_default_add_to_todays_set(smoke_config):
    cfg = smoke_config("callbacks=[default,early_stopping,rich_progress_bar,model_summary]")
    assert list(cfg.callbacks) == [
        "model_checkpoint",
        "step_checkpoint",
        "learning_rate_monitor",
        "progress_bar",
        "fit_timer",
        "early_stopping",
        "model_summary",
    ]
    assert cfg.callbacks.early_stopping.monitor == cfg.monitor.metric == "val/acc"
    assert cfg.callbacks.early_stopping.mode == "max"


def test_early_stopping_stops_a_run_whose_metric_does_not_improve(smoke_config, tmp_path):
    cfg = smoke_config(
        "callbacks=[default,early_stopping]",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=1.0",  # accuracy cannot improve by 1.0: every epoch after the first fails
        "trainer.max_epochs=6",
        *TINY,
    )
    assert len(of_type(callbacks(cfg), EarlyStopping)) == 1
    train(cfg)
    assert json.loads((tmp_path / "timing.json").read_text())["epochs"] == 2  # of 6


def test_rich_progress_bar_replaces_the_tqdm_bar(smoke_config):
    built = callbacks(smoke_config("callbacks=[default,rich_progress_bar]", "trainer.enable_progress_bar=true"))
    bars = of_type(built, ProgressBar)
    assert len(bars) == 1 and isinstance(bars[0], RichProgressBar)


def test_rich_progress_bar_runs(smoke_config, tmp_path):
    train(smoke_config("callbacks=[default,rich_progress_bar]", "trainer.enable_progress_bar=true", *TINY))
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()


def test_model_summary_is_the_trainers_only_summary_with_its_depth(smoke_config, tmp_path):
    cfg = smoke_config("callbacks=[default,model_summary]", "trainer.enable_model_summary=true", "trainer.max_epochs=0", *TINY)
    built = of_type(callbacks(cfg), ModelSummary)
    assert len(built) == 1 and built[0]._max_depth == 2
    trainer = instantiate(cfg.trainer, callbacks=callbacks(cfg), logger=False)
    summaries = of_type(trainer.callbacks, ModelSummary)
    assert len(summaries) == 1 and summaries[0]._max_depth == 2  # Lightning adds no summary of its own


def test_a_model_summary_the_trainer_hides_is_left_out(smoke_config):
    cfg = smoke_config("callbacks=[default,model_summary]")  # debug=smoke: enable_model_summary=false
    assert of_type(callbacks(cfg), ModelSummary) == []
