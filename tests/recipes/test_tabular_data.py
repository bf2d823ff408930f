"""Tabular data: the real diabetes set, the heteroscedastic set with outliers, Poisson counts; seeded splits."""

from __future__ import annotations

import pytest
import torch

from losses import ConfigError
from recipes.data.tabular import TabularDataModule, count_log_rate, heteroscedastic_mean, heteroscedastic_std


def setup(**kwargs) -> TabularDataModule:
    dm = TabularDataModule(**kwargs)
    dm.setup()
    return dm


def test_diabetes_is_the_real_442_rows_split_60_20_20_with_standardised_features():
    dm = setup(dataset="diabetes")
    sizes = {k: len(v[1]) for k, v in dm.splits.items()}
    assert sizes == {"train": 266, "val": 88, "test": 88}
    x, y = dm.splits["train"]
    assert x.shape == (266, 10) and x.dtype == torch.float32
    torch.testing.assert_close(x.mean(0), torch.zeros(10), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(0), torch.ones(10), atol=1e-5, rtol=0)
    assert abs(y.mean().item()) < 1e-5 and abs(y.std().item() - 1) < 1e-5  # target_scaling=standard
    raw = torch.cat([dm.splits[s][1] for s in dm.splits]) * dm.target_std + dm.target_mean
    assert raw.min().item() == pytest.approx(25.0) and raw.max().item() == pytest.approx(346.0)  # sklearn's targets


def test_split_depends_on_data_seed_only():
    first, again, other = setup(dataset="diabetes"), setup(dataset="diabetes"), setup(dataset="diabetes", data_seed=1)
    assert torch.equal(first.splits["test"][1], again.splits["test"][1])
    assert not torch.equal(first.splits["test"][1], other.splits["test"][1])


def test_target_scaling_scale_keeps_targets_positive_and_none_keeps_them_raw():
    scaled = setup(dataset="diabetes", target_scaling="scale")
    assert scaled.splits["train"][1].min() > 0 and abs(scaled.splits["train"][1].std().item() - 1) < 1e-5
    raw = setup(dataset="diabetes", target_scaling="none")
    assert raw.splits["train"][1].min() >= 25


def test_heteroscedastic_noise_grows_with_the_first_feature():
    dm = setup(dataset="heteroscedastic", num_features=4, num_rows=4000, target_scaling="none")
    x = dm.splits["train"][0].double() * dm.feature_std + dm.feature_mean  # back to [0, 1]
    residual = dm.splits["train"][1].double() - heteroscedastic_mean(x)
    low, high = x[:, 0] < 0.2, x[:, 0] > 0.8
    assert residual[high].std() > 4 * residual[low].std()
    torch.testing.assert_close(residual[high].std(), heteroscedastic_std(x[high]).pow(2).mean().sqrt(), rtol=0.1, atol=0)
    assert dm.splits["train"][1].min() > 0  # positive targets: msle, mape and poisson_nll apply


def test_outliers_contaminate_train_and_val_but_not_test():
    clean = setup(dataset="heteroscedastic", num_features=4, target_scaling="none", outliers=0.0)
    dirty = setup(dataset="heteroscedastic", num_features=4, target_scaling="none", outliers=0.1)
    assert torch.equal(clean.splits["test"][1], dirty.splits["test"][1])
    for split in ("train", "val"):
        moved = dirty.splits[split][1] != clean.splits[split][1]
        assert moved.sum().item() == round(0.1 * len(moved))
        assert torch.equal(moved, dirty.outlier_rows[split])
        assert (dirty.splits[split][1] - clean.splits[split][1])[moved].min() > 4 * clean.splits["train"][1].std()
    assert not dirty.outlier_rows["test"].any()


def test_counts_are_poisson_with_a_log_linear_rate():
    dm = setup(dataset="counts", num_features=4, num_rows=4000, target_scaling="none")
    y = dm.splits["train"][1]
    assert torch.equal(y, y.round()) and y.min() >= 0
    x = dm.splits["train"][0].double() * dm.feature_std + dm.feature_mean
    rate = count_log_rate(x).exp()
    assert abs(y.double().mean() - rate.mean()) < 0.1 * rate.mean()
    pearson = ((y.double() - rate) ** 2 / rate).mean()  # about 1 for Poisson counts
    assert 0.85 < pearson < 1.15


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"dataset": "boston"}, "dataset must be one of diabetes, heteroscedastic, counts (got 'boston')"),
        ({"dataset": "diabetes", "num_features": 4}, "data 'diabetes': num_features must be 10 (got 4)"),
        ({"dataset": "heteroscedastic", "num_features": 4, "outliers": 0.7}, "outliers must be in [0, 0.5) (got 0.7)"),
        ({"target_scaling": "minmax"}, "target_scaling must be one of standard, scale, none (got 'minmax')"),
        ({"val_fraction": 0.6}, "val_fraction must be in (0, 0.5)"),
    ],
)
def test_bad_data_settings_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError) as err:
        TabularDataModule(**kwargs)
    assert message in str(err.value)
