"""A NaN or Inf in training stops the run with a report and the last good state, or skips the step if asked."""

from __future__ import annotations

import math

import pytest
import torch

from losses.classification import CrossEntropy
from recipes.run.guards import NonFiniteLossError
from tests.helpers.runs import run_train, weights
from train import run, train

TINY = ("model=mlp", "model.hidden=[16]", "model.dropout=0.0")


@pytest.fixture
def nan_from_call(monkeypatch):
    """``nan_from_call(n)``: cross-entropy returns NaN from its n-th training call on, with two named terms."""

    def patch(first_bad: int, grads_only: bool = False) -> None:
        forward, calls = CrossEntropy.forward, [0]

        def patched(self, logits, target):
            value = forward(self, logits, target)
            if not self.training:
                return value
            calls[0] += 1
            self.terms = {"nll": value.detach(), "penalty": torch.tensor(0.5)}
            if calls[0] < first_bad:
                return value
            if grads_only:  # the value stays finite, d sqrt(x)/dx at 0 is not
                return value + (logits - logits.detach()).pow(2).sqrt().sum()
            self.terms["penalty"] = torch.tensor(float("inf"))
            return value * float("nan")

        monkeypatch.setattr(CrossEntropy, "forward", patched)

    return patch


def test_a_nan_loss_stops_the_run_naming_step_loss_terms_and_keeps_the_last_good_state(smoke_config, tmp_path, nan_from_call):
    nan_from_call(3)
    with pytest.raises(NonFiniteLossError) as err:
        train(smoke_config(*TINY))
    message = str(err.value)
    assert "non-finite training step at epoch 0, batch 2 (global step 2): the loss is nan" in message
    assert "loss 'ce' in slot 'loss' = nan (terms: nll=" in message and "penalty=inf" in message
    assert "the batch's inputs are finite" in message
    assert "skip_nonfinite=true" in message and "task.optimizer.lr" in message
    assert "Likely cause" not in message  # every setting is ordinary: nothing to blame but the generic causes
    saved = torch.load(tmp_path / "checkpoints" / "last_good.ckpt", weights_only=True)
    assert saved["global_step"] == 2  # the state before the bad step: two good updates
    assert all(bool(torch.isfinite(w).all()) for w in saved["state_dict"].values())


def test_train_py_reports_a_nan_loss_as_one_message_and_exit_status_1(smoke_config, nan_from_call, capsys):
    nan_from_call(1)
    with pytest.raises(SystemExit) as exit_:
        run(smoke_config(*TINY))
    assert exit_.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "batch 0 (global step 0)" in errors[0]


def test_finite_loss_with_non_finite_gradients_also_stops_the_run(smoke_config, nan_from_call):
    nan_from_call(2, grads_only=True)
    with pytest.raises(NonFiniteLossError, match=r"batch 1 \(global step 1\): the loss is finite but the gradients of model"):
        train(smoke_config(*TINY))


def test_skip_nonfinite_drops_each_bad_update_and_the_run_finishes(smoke_config, tmp_path, nan_from_call):
    import lightning as L

    from recipes.models import MLP

    nan_from_call(1)  # every training step is bad
    metrics = train(smoke_config(*TINY, "skip_nonfinite=true"))
    assert metrics["train/skipped_nonfinite"] == 4  # debug=smoke trains 4 steps
    assert math.isfinite(metrics["val/loss"]) and math.isfinite(metrics["test/acc"])
    L.seed_everything(0)  # the untrained network as train() builds it: no update was applied
    initial = MLP(in_features=[1, 28, 28], num_outputs=10, hidden=[16], dropout=0.0).state_dict()
    final = weights(tmp_path / "checkpoints" / "last.ckpt")
    assert all(torch.equal(final[f"model.{k}"], v) for k, v in initial.items())


def test_a_nan_on_one_ddp_rank_stops_both_ranks_with_one_message(tmp_path, data_dir):
    """Without a shared decision rank 0 would wait forever in backward's all-reduce for rank 1. Rank 0 is made 6 s
    slower than rank 1 to report (as on a loaded machine): Lightning's observer, polling every 5 s, used to SIGKILL
    it then, before its message."""
    result = run_train(
        "debug=smoke",
        *TINY,
        "trainer=ddp_cpu",
        f"hydra.run.dir={tmp_path}",
        "+callbacks.crash._target_=tests.crash.NanOnRank",
        "+callbacks.crash.rank=1",
        "+callbacks.crash.after=2",
        "+callbacks.crash.rank0_delay_s=6",
        env_extra={"DATA_DIR": str(data_dir)},
        timeout=400,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert "batch 2 (global step 2): the loss is not finite on another process (on rank 0 it is" in errors[0]
    assert torch.load(tmp_path / "checkpoints" / "last_good.ckpt", weights_only=True)["global_step"] == 2


def test_checking_every_n_steps_still_stops_the_run_without_a_sync_per_step(smoke_config, nan_from_call):
    nan_from_call(2)  # the second step goes bad; with checks every 3 steps it is caught at the third
    with pytest.raises(NonFiniteLossError, match=r"within the 3 steps before global step 2 \(nonfinite_check_every=3\)"):
        train(smoke_config(*TINY, "nonfinite_check_every=3"))


def test_skip_mode_needs_a_check_every_step(smoke_config):
    from losses import ConfigError

    with pytest.raises(ConfigError, match="skip_nonfinite=true needs a check every step"):
        train(smoke_config(*TINY, "skip_nonfinite=true", "nonfinite_check_every=4"))


@pytest.mark.parametrize(
    "overrides,cause",
    [
        # a class weight past float32's range: inf / inf (all-zero weights are refused before data loads)
        ((*TINY, "loss.weight=[1e39,1,1,1,1,1,1,1,1,1]"), "loss 'ce': weight holds non-finite values (loss.weight)"),
        (("task=vae", "loss.beta=1e300"), "loss 'elbo': beta is 1e+300, inf in float32 (loss.beta)"),
        # (data.outlier_shift=inf, the third case once, is refused before data loads now: tests/test_bad_inputs.py)
    ],
    ids=["overflowing_class_weight", "huge_beta"],
)
def test_a_setting_that_makes_the_loss_non_finite_is_named_before_the_generic_advice(smoke_config, overrides, cause):
    with pytest.raises(NonFiniteLossError) as err:
        train(smoke_config(*overrides))
    message = str(err.value)
    assert f"Likely cause: {cause}. Fix: correct it; if that is not enough, lower the learning rate" in message


def test_by_default_the_guard_checks_on_the_logging_steps_and_names_the_window(smoke_config, nan_from_call):
    nan_from_call(2)  # nonfinite_check_every=null follows trainer.log_every_n_steps: a check at global step 1
    with pytest.raises(NonFiniteLossError, match=r"within the 2 steps before global step 1 \(nonfinite_check_every=2\)"):
        train(smoke_config(*TINY, "trainer.log_every_n_steps=2"))


def test_a_nan_after_the_last_checked_step_is_caught_when_training_ends(smoke_config, nan_from_call):
    nan_from_call(4)  # 4 steps, checks every 3: the fourth is checked at the end of training
    with pytest.raises(NonFiniteLossError, match=r"before global step 4 \(nonfinite_check_every=3\)"):
        train(smoke_config(*TINY, "trainer.log_every_n_steps=3"))


@pytest.mark.parametrize("skip,check_every,log_every,expected", [(False, None, 10, 10), (True, None, 10, 1), (False, 1, 10, 1)])
def test_the_check_interval_follows_the_logging_interval_unless_set_or_skipping(skip, check_every, log_every, expected):
    from types import SimpleNamespace

    from recipes.run.guards import NonFiniteGuard

    guard = NonFiniteGuard(skip=skip, check_every=check_every)
    guard.setup(SimpleNamespace(log_every_n_steps=log_every), torch.nn.Module(), "fit")
    assert guard.check_every == expected
