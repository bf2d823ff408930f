"""The regression recipe: heads that follow the loss, end-to-end runs for every regression loss, and learning."""

from __future__ import annotations

import math

import hydra
import pytest
import torch

import losses
from losses import ConfigError, Loss
from losses.base import TargetNeed
from recipes.data.tabular import TabularDataModule
from recipes.regression import HEADS, RegressionTask, head_for
from recipes.run.checks import check_config
from train import train

QUIET = ("logger=csv", "callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
SYNTHETIC = ("task=regression", "data=heteroscedastic", "data.num_rows=1000")


@pytest.fixture
def one_thread():
    """Tiny tabular models run faster on one thread, above all on a shared CPU; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build_task(make_config, *overrides: str) -> RegressionTask:
    cfg = make_config("task=regression", *overrides)
    slot_losses = check_config(cfg)
    return hydra.utils.instantiate(cfg.task, model=hydra.utils.instantiate(cfg.model), losses=slot_losses)


@pytest.mark.parametrize(
    "overrides,outputs",
    [
        (("loss=mse",), 1),
        (("loss=huber",), 1),
        (("loss=gaussian_nll",), 2),
        (("loss=poisson_nll", "data=counts"), 1),
        (("loss=quantile",), 3),
        (("loss=quantile", "loss.tau=[0.1,0.25,0.5,0.75,0.9]"), 5),
        (("loss=quantile", "loss.tau=0.8"), 1),
    ],
)
def test_the_model_gets_as_many_outputs_as_the_loss_needs(make_config, overrides, outputs):
    task = build_task(make_config, *overrides)
    assert task.model.head.out_features == outputs
    num_features = task.model.features[1].in_features
    assert task(torch.randn(5, num_features)).shape == (5, outputs)


def config_error_of(err: BaseException) -> ConfigError:
    """The ConfigError behind ``err`` (Hydra wraps errors raised while instantiating)."""
    while not isinstance(err, ConfigError) and err.__cause__ is not None:
        err = err.__cause__
    assert isinstance(err, ConfigError), repr(err)
    return err


def test_a_built_model_with_the_wrong_output_count_is_a_config_error(make_config):
    cfg = make_config("task=regression", "loss=gaussian_nll", "model.num_outputs=1")
    with pytest.raises(Exception) as err:
        hydra.utils.instantiate(cfg.task, model=hydra.utils.instantiate(cfg.model), losses=check_config(cfg))
    message = str(config_error_of(err.value))
    assert "model.num_outputs: loss 'gaussian_nll' needs 2 output(s) per row (a mean and a variance)" in message
    assert "but the model has 1" in message


def test_heads_map_outputs_to_what_each_loss_takes():
    raw = torch.tensor([[0.0, 2.0, -1.0], [1.0, -3.0, 0.5]])
    quantile = head_for(losses.build("quantile", tau=[0.9, 0.1, 0.5]))
    torch.testing.assert_close(quantile.point(raw), torch.tensor([0.0, 0.5]))  # sorted, then the median column
    lower, upper = quantile.interval(raw)
    assert lower.tolist() == [-1.0, -3.0] and upper.tolist() == [2.0, 1.0]
    assert quantile.nominal == pytest.approx(0.8)
    gaussian = head_for(losses.build("gaussian_nll"), interval=0.9)
    lower, upper = gaussian.interval(raw[:, :2])
    sd = torch.nn.functional.softplus(raw[:, 1]).sqrt()
    torch.testing.assert_close(upper - raw[:, 0], 1.6449 * sd, rtol=1e-4, atol=1e-4)
    assert head_for(losses.build("poisson_nll")).point(raw[:, :1]).tolist() == pytest.approx([1.0, math.e])
    assert head_for(losses.build("msle")).point(torch.tensor([[-40.0]])).item() > -1  # msle never sees <= -1


@pytest.mark.parametrize("loss", losses.available("regression"))
def test_every_regression_loss_trains_end_to_end_and_reports_mae_rmse(smoke_config, one_thread, loss):
    metrics = train(smoke_config(*SYNTHETIC, f"loss={loss}"))
    for key in ("test/mae", "test/rmse", "val/mae", "train/loss_epoch"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert metrics["test/rmse"] >= metrics["test/mae"]
    if loss in ("quantile", "gaussian_nll"):
        assert 0 <= metrics["test/coverage"] <= 1 and metrics["test/interval_width"] > 0
    else:
        assert "test/coverage" not in metrics


def test_a_short_run_on_diabetes_beats_predicting_the_training_mean(make_config, one_thread):
    metrics = train(make_config(*QUIET, "task=regression", "data=diabetes", "trainer.max_epochs=8"))
    dm = TabularDataModule(dataset="diabetes")
    dm.setup()
    baseline = (dm.splits["test"][1] - dm.splits["train"][1].mean()).abs().mean().item()
    assert metrics["test/mae"] < 0.85 * baseline
    assert metrics["test/rmse"] < 0.85  # standardised targets: the mean predictor's RMSE is about 1


def test_on_the_outlier_set_mae_recovers_the_function_better_than_mse(make_config, one_thread):
    results = {}
    for loss in ("mse", "mae"):
        results[loss] = train(make_config(*QUIET, *SYNTHETIC, "data.outliers=0.1", "trainer.max_epochs=10", f"loss={loss}"))
    assert results["mae"]["test/mae"] < 0.85 * results["mse"]["test/mae"]


@pytest.mark.parametrize("loss", ["gaussian_nll", "quantile"])
def test_interval_coverage_is_near_nominal_on_clean_synthetic_data(make_config, one_thread, loss):
    metrics = train(
        make_config(*QUIET, *SYNTHETIC, "data.outliers=0", "trainer.max_epochs=20", "task.optimizer.lr=0.01", f"loss={loss}")
    )
    assert 0.8 <= metrics["test/coverage"] <= 0.98  # nominal 0.9 (loss=quantile: taus 0.05 and 0.95)
    dm = TabularDataModule(dataset="heteroscedastic", num_features=4, num_rows=1000, target_scaling="none")
    dm.setup()
    marginal = torch.quantile(dm.splits["test"][1], torch.tensor([0.05, 0.95]))
    assert metrics["test/interval_width"] < 0.8 * float(marginal[1] - marginal[0])  # narrower than ignoring x


def test_poisson_nll_on_counts_learns_the_rate(make_config, one_thread):
    metrics = train(
        make_config(
            *QUIET,
            "task=regression",
            "data=counts",
            "data.num_rows=1000",
            "loss=poisson_nll",
            "trainer.max_epochs=10",
            "task.optimizer.lr=0.01",
        )
    )
    dm = TabularDataModule(dataset="counts", num_features=4, num_rows=1000, target_scaling="none")
    dm.setup()
    baseline = (dm.splits["test"][1] - dm.splits["train"][1].mean()).abs().mean().item()
    assert metrics["test/mae"] < 0.85 * baseline


def test_msle_on_standardised_targets_stops_with_the_fix(make_config):
    cfg = make_config(*QUIET, "task=regression", "data=diabetes", "loss=msle")
    with pytest.raises(ConfigError, match=r"loss=msle: needs targets > -1.*use data.target_scaling=scale"):
        train(cfg)
    metrics = train(
        make_config(
            *QUIET,
            "task=regression",
            "data=diabetes",
            "data.target_scaling=scale",
            "loss=msle",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
        )
    )
    assert math.isfinite(metrics["test/mae"])


@pytest.mark.parametrize("data", ["diabetes", "heteroscedastic", "counts"])
def test_every_tabular_data_config_composes_with_the_regression_task(make_config, data):
    cfg = make_config("task=regression", f"data={data}")
    assert check_config(cfg)["loss"].name == "mse"
    assert cfg.model.in_features == cfg.data.num_features
    assert cfg.monitor.metric == "val/mae"


def test_a_loss_of_another_kind_in_the_regression_slot_names_the_regression_losses(make_config):
    with pytest.raises(ConfigError) as err:
        check_config(make_config("task=regression", "loss=focal"))
    for name in losses.available("regression"):
        assert name in str(err.value)


def test_interval_level_out_of_range_is_refused(make_config):
    with pytest.raises(Exception) as err:
        build_task(make_config, "loss=gaussian_nll", "task.interval=1.5")
    assert "task 'regression': interval must be < 1 (got 1.5)" in str(config_error_of(err.value))


@pytest.mark.parametrize("name", losses.available("regression"))
def test_every_regression_loss_declares_a_head_the_task_has(name):
    assert losses.build(name).head in HEADS


def test_a_head_the_task_does_not_have_is_a_config_error_naming_the_heads_it_has():
    loss = losses.build("mse")
    loss.head = "log_scale"
    with pytest.raises(ConfigError, match="loss 'mse': declares head 'log_scale'; the regression task has point, log1p"):
        head_for(loss)


@pytest.fixture
def laplace_loss():
    """A regression loss defined here that declares a mean-and-variance head and positive targets; no recipe names it."""

    @losses.register("zz_test_laplace", kind="regression")
    class LaplaceNLL(Loss):
        """Laplace negative log-likelihood ``|mean - target| / b + log b``, b = sqrt(var)."""

        head = "mean_variance"
        target_need = TargetNeed(lambda y: y > 0, "> 0")

        def forward(self, mean: torch.Tensor, target: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
            b = var.sqrt()
            return self.reduce((mean - target).abs() / b + b.log())

    try:
        yield "zz_test_laplace"
    finally:
        losses.unregister("zz_test_laplace")


def test_a_new_loss_declaring_a_mean_and_variance_head_gets_two_outputs_and_its_variance(make_config, laplace_loss):
    task = build_task(make_config, "loss=mse", f"loss.name={laplace_loss}")
    assert task.model.head.out_features == 2 and task.head.nominal == 0.9
    raw, target = torch.tensor([[1.0, 0.5], [-2.0, 3.0]]), torch.tensor([0.0, 1.0])
    b = torch.nn.functional.softplus(raw[:, 1]).sqrt()
    expected = ((raw[:, 0] - target).abs() / b + b.log()).mean()
    torch.testing.assert_close(task.head.loss(task.losses["loss"], raw, target), expected)


def test_a_new_loss_declaring_what_it_needs_of_targets_refuses_data_without_it(make_config, laplace_loss):
    cfg = make_config(*QUIET, "task=regression", "data=diabetes", "loss=mse", f"loss.name={laplace_loss}")  # standardised y
    with pytest.raises(ConfigError, match=r"loss=zz_test_laplace: needs targets > 0, but data 'diabetes' has targets down to"):
        train(cfg)


def test_a_new_loss_with_a_declared_head_trains_end_to_end_on_data_it_accepts(smoke_config, one_thread, laplace_loss):
    metrics = train(smoke_config(*SYNTHETIC, "loss=mse", f"loss.name={laplace_loss}"))  # raw targets: all positive
    assert math.isfinite(metrics["test/mae"]) and 0 <= metrics["test/coverage"] <= 1  # the variance head's interval


def test_a_point_loss_is_scored_as_a_gaussian_with_the_validation_residual_variance(smoke_config, one_thread):
    # one validation epoch over the whole val split: the variance fitted at test is that epoch's val MSE
    metrics = train(smoke_config(*SYNTHETIC, "loss=mse", "trainer.limit_val_batches=null", "trainer.limit_test_batches=null"))
    variance, test_mse = metrics["val/rmse"] ** 2, metrics["test/rmse"] ** 2
    by_hand = 0.5 * (math.log(variance) + test_mse / variance + math.log(2 * math.pi))
    assert metrics["test/nll"] == pytest.approx(by_hand, rel=1e-4)
    assert 0 <= metrics["test/coverage50"] <= metrics["test/coverage90"] <= 1  # nested intervals


def test_homoscedastic_gaussian_nll_learns_one_variance_for_every_row(smoke_config, one_thread, tmp_path):
    metrics = train(smoke_config(*SYNTHETIC, "loss=gaussian_nll", "task.homoscedastic=true"))
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert state["raw_variance"].shape == (1,) and state["model.head.weight"].shape[0] == 1  # the mean only
    assert state["raw_variance"].item() != 0.0  # trained
    for key in ("test/nll", "test/coverage50", "test/coverage90", "test/coverage"):
        assert math.isfinite(metrics[key]), key


def test_homoscedastic_needs_the_gaussian_nll_loss(make_config):
    with pytest.raises(ConfigError, match=r"homoscedastic needs loss=gaussian_nll \(got True\)"):
        train(make_config(*SYNTHETIC, "task=regression", "loss=mse", "task.homoscedastic=true"))
