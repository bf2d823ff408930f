"""The run's callbacks reach the Trainer as one ``Bundle``; the training step values reach the loggers in one call."""

from __future__ import annotations

import csv
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar

from recipes.run.bundle import Bundle, bundled, find_callback
from recipes.run.callbacks import FitTimer
from recipes.run.folder import SaveOnSigterm
from recipes.run.guards import NonFiniteGuard
from recipes.run.resume import ExactResume
from train import build, train

TINY = ("model=mlp", "model.hidden=[16]", "data.batch_size=16", "data.eval_batch_size=32")


class Counter(L.Callback):
    """Counts the training steps it sees and keeps the count in checkpoints."""

    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps = state_dict["steps"]


def test_the_trainer_sees_one_bundle_beside_what_lightning_looks_up_by_type(smoke_config):
    _, _, _, trainer = build(
        smoke_config(*TINY, "trainer.enable_model_summary=true", "trainer.enable_progress_bar=true"),
        {"loss": torch.nn.CrossEntropyLoss()},
    )
    bundles = [c for c in trainer.callbacks if isinstance(c, Bundle)]
    assert len(bundles) == 1
    assert not any(isinstance(c, (FitTimer, ExactResume, NonFiniteGuard, SaveOnSigterm)) for c in trainer.callbacks)
    members = {type(m) for m in bundles[0].members}
    assert {FitTimer, ExactResume, NonFiniteGuard, SaveOnSigterm, LearningRateMonitor} <= members
    assert any(issubclass(kind, ModelSummary) for kind in members)  # Lightning's own summary joins the bundle too
    assert len(trainer.checkpoint_callbacks) == 2 and isinstance(trainer.progress_bar_callback, ProgressBar)
    assert isinstance(find_callback(trainer, SaveOnSigterm), SaveOnSigterm)


def test_a_hook_goes_only_to_the_members_that_implement_it():
    guard, timer = NonFiniteGuard(), FitTimer()
    bundle = Bundle([guard, timer])
    assert "on_before_backward" in vars(bundle) and "on_fit_start" in vars(bundle)
    assert "on_validation_batch_end" not in vars(bundle)  # no member does anything there: Callback's no-op
    checkpoint = ModelCheckpoint()
    assert bundled([checkpoint, guard]) == [checkpoint, guard]  # one member: no bundle
    merged = bundled([guard, checkpoint, timer])  # the bundle where its first member was, the checkpoint kept apart
    assert isinstance(merged[0], Bundle) and merged[0].members == [guard, timer] and merged[1:] == [checkpoint]


def fit(tmp_path: Any, callbacks: list[L.Callback], steps: int, ckpt_path: str | None = None) -> L.Trainer:
    from lightning.pytorch.demos.boring_classes import BoringModel

    trainer = L.Trainer(
        max_steps=steps, callbacks=callbacks, default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(BoringModel(), ckpt_path=ckpt_path)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    return trainer


def test_members_keep_their_checkpoint_state_under_their_own_keys(tmp_path):
    counter = Counter()
    fit(tmp_path, [Bundle([counter, FitTimer()])], steps=3)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)["callbacks"]
    assert saved == {"Counter": {"steps": 3}}
    unbundled = Counter()  # a checkpoint of a bundle resumes without one, and the other way round
    fit(tmp_path, [unbundled], steps=5, ckpt_path=str(tmp_path / "last.ckpt"))
    assert unbundled.steps == 5
    again = Counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(tmp_path, [Bundle([again, FitTimer()])], steps=7, ckpt_path=str(tmp_path / "last.ckpt"))
    assert not [w for w in caught if "Please add the following callbacks" in str(w.message)]  # they are in the bundle
    assert again.steps == 7


def rows(folder: Any) -> list[dict[str, str]]:
    with open(folder / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_step_values_reach_each_logger_in_one_call_at_lightnings_step(smoke_config, tmp_path, monkeypatch):
    from recipes.run.loggers import CSVLogger

    calls: list[tuple[int, tuple[str, ...]]] = []
    logged = CSVLogger.log_metrics

    def recording(self: Any, metrics: dict[str, float], step: int | None = None) -> None:
        calls.append((step, tuple(sorted(metrics))))
        logged(self, metrics, step)

    monkeypatch.setattr(CSVLogger, "log_metrics", recording)
    metrics = train(smoke_config("task=vae", "trainer.log_every_n_steps=2", "model.hidden=[16]", "model.latent_dim=2"))
    step_calls = [(step, keys) for step, keys in calls if "train/loss" in keys]
    assert [step for step, _ in step_calls] == [1, 3]  # debug=smoke: 4 steps, logged after optimiser steps 2 and 4
    assert step_calls[0][1] == ("epoch", "train/kl_weight", "train/loss", "train/loss_kl", "train/loss_reconstruction")
    assert sum(1 for row in rows(tmp_path) if row["train/loss"]) == 2
    assert "train/loss" in metrics  # still the progress bar's and the callbacks' (trainer.callback_metrics)


def test_with_accumulation_only_the_batches_that_step_write_their_values(smoke_config, tmp_path, monkeypatch):
    from recipes.run.loggers import CSVLogger

    steps: list[int | None] = []
    logged = CSVLogger.log_metrics

    def recording(self: Any, metrics: dict[str, float], step: int | None = None) -> None:
        if "train/loss" in metrics:
            steps.append(step)
        logged(self, metrics, step)

    monkeypatch.setattr(CSVLogger, "log_metrics", recording)
    train(smoke_config(*TINY, "trainer.accumulate_grad_batches=2", "trainer.log_every_n_steps=1"))
    assert steps == [0, 1]  # debug=smoke: 4 batches, 2 optimiser steps, each written once at Lightning's step
