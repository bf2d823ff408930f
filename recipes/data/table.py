"""Your own table: a CSV (or Parquet) file of rows (``data=csv data.path=FILE data.target=COLUMN``).

Every column but the target is a feature unless ``features`` lists them. Text, boolean and ``categorical``
columns are one-hot encoded over the categories of the whole file (so the width is known before the split:
the configs read it through ``${table_features:...}``, recipes/run/resolvers.py); numeric columns are
standardised with the training split's mean and std only. Missing values are refused (``missing: refuse``),
filled with the training mean (numeric) or left as no category (``impute``), or their rows dropped (``drop``).
The split is a seeded permutation (stratified by class when ``target_kind: classification``).
"""

from __future__ import annotations

import difflib
import functools
import os
from pathlib import Path

import torch
from torch import Tensor

from losses.errors import ConfigError, check, check_integer
from recipes.data.base import InMemoryDataModule, Splits, check_fractions
from recipes.data.sources import stratified_split
from recipes.data.tabular import SCALINGS

MISSING = ("refuse", "impute", "drop")
TARGET_KINDS = ("regression", "classification")
PARQUET = (".parquet", ".pq")
OWNER = "data 'csv'"


def read_table(path: str | os.PathLike | None, owner: str = OWNER):
    """The file as a pandas DataFrame (read once per file version); a missing or empty file is refused."""
    check(owner, path is not None and str(path) not in ("", "None"), "path must be a CSV or Parquet file: data.path=FILE", path)
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{owner}: path {file} is not a file; give a CSV or Parquet table with data.path=FILE")
    stat = file.stat()
    return cached_table(str(file), stat.st_mtime_ns, stat.st_size, owner).copy()


@functools.lru_cache(maxsize=4)
def cached_table(file: str, mtime: int, size: int, owner: str):
    import pandas as pd

    if size == 0:
        raise ConfigError(f"{owner}: {file} is empty; it needs a header line and rows")
    if file.lower().endswith(PARQUET):
        try:
            frame = pd.read_parquet(file)
        except ImportError:
            raise ConfigError(f"{owner}: reading {file} needs pyarrow: pip install pyarrow (or save it as CSV)") from None
    else:
        try:
            frame = pd.read_csv(file, sep=None if file.lower().endswith(".tsv") else ",", engine="python")
        except pd.errors.EmptyDataError:
            raise ConfigError(f"{owner}: {file} is empty; it needs a header line and rows") from None
        except pd.errors.ParserError as err:
            raise ConfigError(f"{owner}: {file} is not a readable CSV ({str(err).strip()})") from None
    if len(frame) == 0:
        raise ConfigError(f"{owner}: {file} has a header ({', '.join(map(str, frame.columns))}) but no rows")
    return frame


def column(frame, name: object, setting: str, owner: str) -> str:
    """``name`` if it is a column of ``frame``, else a ConfigError with the closest column names."""
    columns = [str(c) for c in frame.columns]
    if str(name) in columns:
        return str(name)
    close = difflib.get_close_matches(str(name), columns, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"{owner}: {setting} '{name}' is not a column of the table{hint} (columns: {', '.join(columns)})")


def feature_columns(frame, target: str | None, features, owner: str) -> list[str]:
    """The feature columns: ``features`` checked against the table, or every column but the target."""
    check(owner, target not in (None, ""), "target must name the column to predict: data.target=COLUMN", target)
    target = column(frame, target, "target", owner)
    if features is None:
        names = [str(c) for c in frame.columns if str(c) != target]
    else:
        names = [column(frame, f, "features entry", owner) for f in features]
    check(owner, target not in names, "features must not hold the target column", target)
    check(owner, bool(names), "the table needs at least one feature column besides the target", names)
    return names


def is_categorical(frame, name: str, categorical) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    series = frame[name]
    return name in set(map(str, categorical or ())) or is_bool_dtype(series) or not is_numeric_dtype(series)


def categories(frame, name: str) -> list:
    """The sorted categories of one column over the whole file (missing values aside)."""
    return sorted(frame[name].dropna().unique().tolist(), key=str)


def encoded_names(frame, names: list[str], categorical) -> list[str]:
    """The encoded feature names: a numeric column as itself, a categorical one as ``column=category`` per category."""
    out: list[str] = []
    for name in names:
        out += [f"{name}={c}" for c in categories(frame, name)] if is_categorical(frame, name, categorical) else [name]
    return out


def table_features(path: str, target: str, features=None, categorical=None) -> int:
    """``${table_features:...}``: how many features the encoded table has (one-hot columns counted)."""
    frame = read_table(path)
    return len(encoded_names(frame, feature_columns(frame, target, features, OWNER), categorical))


def table_classes(path: str, target: str) -> int:
    """``${table_classes:...}``: how many distinct values the target column takes."""
    frame = read_table(path)
    return len(categories(frame, column(frame, target, "target", OWNER)))


class TableDataModule(InMemoryDataModule):
    """``(features [B, F], target [B])`` float32 rows of one table; targets int64 classes for classification.

    ``max_categories`` refuses a categorical column with more distinct values (an identifier, a free-text
    column) before it becomes that many features. ``target_scaling`` as for data=diabetes (regression only).
    """

    fields = ("features", "target")
    batches = ("rows+targets", "rows+labels")  # regression targets or class indices (target_kind)
    slice_on_cpu = True

    def __init__(
        self,
        name: str = "csv",
        path: str | None = None,
        target: str | None = None,
        features: list[str] | None = None,
        categorical: list[str] | None = None,
        target_kind: str = "regression",
        missing: str = "refuse",
        max_categories: int = 50,
        target_scaling: str = "standard",
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        data_seed: int = 0,
        num_features: int | None = None,
        num_classes: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        on_device: str | bool = "auto",
    ) -> None:
        super().__init__(name, batch_size, eval_batch_size, num_workers, on_device)
        owner = self.owner
        check(owner, target_kind in TARGET_KINDS, f"target_kind must be one of {', '.join(TARGET_KINDS)}", target_kind)
        check(owner, missing in MISSING, f"missing must be one of {', '.join(MISSING)}", missing)
        check(owner, target_scaling in SCALINGS, f"target_scaling must be one of {', '.join(SCALINGS)}", target_scaling)
        self.max_categories = check_integer(owner, "max_categories", max_categories, low=2)
        check_fractions(owner, val_fraction, test_fraction)
        frame = read_table(path, owner)
        self.columns = feature_columns(frame, target, features, owner)
        self.target = column(frame, target, "target", owner)
        self.categorical = [n for n in self.columns if is_categorical(frame, n, categorical)]
        self.levels = {name: categories(frame, name) for name in self.categorical}
        for name, levels in self.levels.items():
            found = len(levels)
            check(
                owner,
                found <= self.max_categories,
                f"column '{name}' has {found} categories, more than max_categories={self.max_categories}; leave it out "
                "of data.features or raise data.max_categories",
                found,
            )
        if target_kind == "regression":
            from pandas.api.types import is_bool_dtype, is_numeric_dtype

            series = frame[self.target]
            if is_bool_dtype(series) or not is_numeric_dtype(series):
                values = ", ".join(repr(v) for v in categories(frame, self.target)[:3])
                raise ConfigError(
                    f"{owner}: target '{self.target}' is not numeric (values {values}, ...): regression needs numbers; "
                    "for classes use task=classification with data.target_kind=classification"
                )
        self.feature_names = encoded_names(frame, self.columns, categorical)
        width = len(self.feature_names)
        check(owner, num_features in (None, width), f"num_features must be {width}, the encoded width of the table", num_features)
        self.classes = categories(frame, self.target) if target_kind == "classification" else []
        if target_kind == "classification":
            found = len(self.classes)
            check(owner, num_classes in (None, found), f"num_classes must be {found}, the target's distinct values", num_classes)
        self.path, self.dataset = path, Path(str(path)).name
        self.target_kind, self.missing, self.target_scaling = target_kind, missing, target_scaling
        self.val_fraction, self.test_fraction, self.data_seed = val_fraction, test_fraction, data_seed
        self.num_features, self.num_classes = len(self.feature_names), len(self.classes) or None

    def load(self) -> Splits:
        """Rows with missing values handled, split (seeded), then encoded with the training split's statistics."""
        frame = self.handle_missing(read_table(self.path, self.owner)[[*self.columns, self.target]])
        parts = self.split_rows(frame)
        train = frame.iloc[parts["train"].numpy()]
        numeric = [n for n in self.columns if n not in self.categorical]
        fill = train[numeric].mean()
        self.feature_mean = train[numeric].fillna(fill).mean()
        self.feature_std = train[numeric].fillna(fill).std().fillna(1.0).clip(lower=1e-12)
        targets = self.targets(frame)
        if self.target_kind == "regression":
            y_train = targets[parts["train"]]
            self.target_mean = float(y_train.mean()) if self.target_scaling == "standard" else 0.0
            self.target_std = float(y_train.std()) if self.target_scaling != "none" else 1.0
            targets = ((targets - self.target_mean) / self.target_std).float()
        features = self.encode(frame, fill)
        return {split: (features[rows], targets[rows]) for split, rows in parts.items()}

    def handle_missing(self, frame):
        """``refuse``: a ConfigError naming the columns with missing values; ``drop``: those rows go; ``impute``:
        only rows without a target go (features are filled in ``encode``)."""
        if self.missing == "refuse":
            counts = frame.isna().sum()
            holes = {str(c): int(n) for c, n in counts.items() if n}
            if holes:
                where = ", ".join(f"'{c}' ({n} rows)" for c, n in holes.items())
                raise ConfigError(
                    f"{self.owner}: missing values in {where}; set data.missing=impute (training mean, or no category) "
                    "or data.missing=drop (drop those rows)"
                )
        subset = None if self.missing == "drop" else [self.target]
        kept = frame.dropna(subset=subset).reset_index(drop=True)
        check(self.owner, len(kept) >= 10, "the table needs at least 10 rows with values to split", len(kept))
        return kept

    def split_rows(self, frame) -> dict[str, Tensor]:
        """Row indices of test, val and train: a seeded permutation, stratified by class for classification."""
        if self.target_kind == "classification":
            test, val, train = stratified_split(self.targets(frame), (self.test_fraction, self.val_fraction), self.data_seed)
            return {"train": train, "val": val, "test": test}
        order = torch.randperm(len(frame), generator=torch.Generator().manual_seed(self.data_seed))
        n_test, n_val = round(self.test_fraction * len(frame)), round(self.val_fraction * len(frame))
        return {"train": order[n_test + n_val :], "val": order[n_test : n_test + n_val], "test": order[:n_test]}

    def targets(self, frame) -> Tensor:
        """Float64 targets for regression; class indices (sorted distinct values) for classification."""
        values = frame[self.target]
        if self.target_kind == "classification":
            index = {v: i for i, v in enumerate(self.classes)}
            return torch.tensor([index[v] for v in values.tolist()], dtype=torch.long)
        return torch.tensor(values.to_numpy(dtype="float64"))

    def encode(self, frame, fill) -> Tensor:
        """Numeric columns standardised (missing ones at the training mean, i.e. 0); categorical ones one-hot."""
        import pandas as pd

        blocks = []
        for name in self.columns:
            if name in self.categorical:
                levels = pd.Categorical(frame[name], categories=self.levels[name])  # missing: no category
                blocks.append(torch.tensor(pd.get_dummies(levels, dtype="float64").to_numpy()))
            else:
                x = frame[name].astype("float64").fillna(fill[name])
                blocks.append(torch.tensor(((x - self.feature_mean[name]) / self.feature_std[name]).to_numpy())[:, None])
        return torch.cat(blocks, 1).float()
