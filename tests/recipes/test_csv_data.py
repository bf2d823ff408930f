"""Your own table: scikit-learn's diabetes rows written as a CSV with a text column, encoded, split, trained on."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from losses import ConfigError
from recipes.data.table import TableDataModule, table_features
from train import train

SITES = ("north", "south", "west")


def diabetes_frame() -> pd.DataFrame:
    """The 442 real rows (raw units), sex as text F/M and a made-up three-valued text column ``site``."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["sex"] = np.where(frame["sex"] == 1, "F", "M")
    frame["site"] = [SITES[i % 3] for i in range(len(frame))]
    return frame


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "diabetes.csv"
    diabetes_frame().to_csv(path, index=False)
    return path


def test_text_columns_are_one_hot_and_numbers_standardised_on_the_training_split(table):
    dm = TableDataModule(path=str(table), target="target")
    dm.setup()
    assert dm.feature_names == ["age", "sex=F", "sex=M", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6",
                                "site=north", "site=south", "site=west"]  # fmt: skip
    assert table_features(str(table), "target") == 14 == dm.num_features
    x, y = dm.splits["train"]
    assert x.shape == (266, 14) and {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 266, "val": 88, "test": 88}
    numeric = [dm.feature_names.index(n) for n in ("age", "bmi", "s6")]
    torch.testing.assert_close(x[:, numeric].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x[:, numeric].std(0), torch.ones(3), atol=1e-5, rtol=0)
    assert x[:, 1:3].sum(1).eq(1).all() and x[:, 11:14].sum(1).eq(1).all()  # exactly one category per row
    raw = diabetes_frame()
    train_rows = raw.iloc[dm.split_rows(raw)["train"].numpy()]
    assert dm.feature_mean["bmi"] == pytest.approx(train_rows["bmi"].mean())  # training rows only
    assert dm.feature_mean["bmi"] != pytest.approx(raw["bmi"].mean(), abs=1e-6)
    assert float(y.mean()) == pytest.approx(0, abs=1e-5) and dm.target_std == pytest.approx(train_rows["target"].std())


def test_features_pick_columns_categorical_one_hots_a_numeric_one_and_the_split_follows_data_seed(table):
    dm = TableDataModule(path=str(table), target="target", features=["bmi", "s5", "age"], categorical=["age"], max_categories=60)
    assert dm.feature_names[:2] == ["bmi", "s5"] and len(dm.feature_names) == 2 + diabetes_frame()["age"].nunique()
    first, again = TableDataModule(path=str(table), target="target"), TableDataModule(path=str(table), target="target")
    other = TableDataModule(path=str(table), target="target", data_seed=1)
    for d in (first, again, other):
        d.setup()
    assert torch.equal(first.splits["test"][1], again.splits["test"][1])
    assert not torch.equal(first.splits["test"][1], other.splits["test"][1])


def test_missing_values_are_refused_imputed_with_the_training_mean_or_dropped(tmp_path):
    frame = diabetes_frame()
    frame.loc[[3, 10], "bmi"] = np.nan
    frame.loc[5, "site"] = np.nan
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ConfigError, match=r"missing values in 'bmi' \(2 rows\), 'site' \(1 rows\); set data.missing=impute"):
        TableDataModule(path=str(path), target="target").setup()
    imputed = TableDataModule(path=str(path), target="target", missing="impute")
    imputed.setup()
    x = torch.cat([imputed.splits[s][0] for s in ("train", "val", "test")])
    assert len(x) == 442 and torch.isfinite(x).all()
    bmi = imputed.feature_names.index("bmi")
    assert (x[:, bmi].abs() < 1e-6).sum() >= 2  # at the training mean: 0 once standardised
    assert (x[:, 11:14].sum(1) == 0).sum() == 1  # the missing site: no category
    dropped = TableDataModule(path=str(path), target="target", missing="drop")
    dropped.setup()
    assert sum(len(v[1]) for v in dropped.splits.values()) == 439


def test_parquet_is_read_like_csv(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "diabetes.parquet"
    diabetes_frame().to_parquet(path)
    dm = TableDataModule(path=str(path), target="target")
    dm.setup()
    assert dm.num_features == 14 and len(dm.splits["train"][1]) == 266


def test_classification_targets_are_class_indices_stratified(table):
    dm = TableDataModule(path=str(table), target="site", target_kind="classification")
    dm.setup()
    assert dm.classes == list(SITES) and dm.num_classes == 3
    assert all(torch.bincount(v[1]).min() > 0 for v in dm.splits.values()) and dm.splits["train"][1].dtype == torch.long


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "targte"}, r"target 'targte' is not a column of the table; did you mean 'target'\? \(columns: age, sex"),
        ({"target": "target", "features": ["bmi", "bp2"]}, r"features entry 'bp2' is not a column .*did you mean 'bp'\?"),
        ({"target": "sex"}, r"target 'sex' is not numeric \(values 'F', 'M', ...\): regression needs numbers"),
        ({"target": None}, r"target must name the column to predict: data.target=COLUMN"),
        ({"target": "target", "max_categories": 2}, r"column 'site' has 3 categories, more than max_categories=2"),
        ({"target": "target", "num_features": 10}, r"num_features must be 14, the encoded width of the table"),
    ],
)
def test_a_wrong_setting_is_named_with_the_fix(table, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TableDataModule(path=str(table), **kwargs)


def test_an_empty_or_absent_file_is_refused(tmp_path):
    empty, header = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("")
    header.write_text("a,b,target\n")
    with pytest.raises(ConfigError, match=rf"data 'csv': {empty} is empty; it needs a header line and rows"):
        TableDataModule(path=str(empty), target="target")
    with pytest.raises(ConfigError, match=r"header.csv has a header \(a, b, target\) but no rows"):
        TableDataModule(path=str(header), target="target")
    with pytest.raises(ConfigError, match=r"path .*nope.csv is not a file"):
        TableDataModule(path=str(tmp_path / "nope.csv"), target="target")
    with pytest.raises(ConfigError, match=r"path must be a CSV or Parquet file: data.path=FILE"):
        TableDataModule(target="target")


def test_regression_trains_on_the_csv_with_the_width_read_from_the_file(smoke_config, table):
    cfg = smoke_config("task=regression", "data=csv", f"data.path={table}", "data.target=target", "model.hidden=[16]")
    assert cfg.model.in_features == 14
    metrics = train(cfg)
    assert math.isfinite(metrics["test/mae"]) and metrics["test/mae"] > 0


def test_a_misspelt_target_on_the_command_line_ends_with_the_closest_column(make_config, table, capsys):
    from train import run

    with pytest.raises(SystemExit) as stopped:
        run(make_config("task=regression", "data=csv", f"data.path={table}", "data.target=progression"))
    assert stopped.value.code == 2
    assert "target 'progression' is not a column of the table" in capsys.readouterr().err


def test_tabular_classification_trains_on_a_text_target(smoke_config, table):
    cfg = smoke_config(
        "task=classification", "data=csv_classes", "model=tabular_mlp", f"data.path={table}", "data.target=site",
        "model.hidden=[16]", "model.num_outputs=${data.num_classes}",
    )  # fmt: skip
    assert cfg.task.num_classes == 3 and cfg.model.in_features == 12  # site leaves, target (a number) joins
    metrics = train(cfg)
    assert 0 <= metrics["test/acc"] <= 1
