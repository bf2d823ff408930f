"""Tabular regression data as ``(features [B, F], target [B])`` batches, held in memory.

- ``diabetes``: scikit-learn's diabetes set (442 real patients, 10 features, disease progression after
  one year; bundled with scikit-learn, no download).
- ``heteroscedastic``: synthetic rows whose noise grows with the first feature; ``outliers`` adds gross
  upward errors to the targets, so the choice of loss matters.
- ``counts``: synthetic Poisson counts with a log-linear rate, for ``poisson_nll``.

Features are standardised with the training split's mean and std. Targets are scaled as ``target_scaling``
says (``standard``, ``scale``: divided by the std only, so positive targets stay positive, or ``none``).
Outliers go into the train and val splits only: the test split stays clean, so test metrics measure how
well the function (and its noise) is recovered. Generation and split depend on ``data_seed`` only.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from losses.errors import ConfigError
from recipes.data.device import DeviceBatches

DATASETS = ("diabetes", "heteroscedastic", "counts")
SCALINGS = ("standard", "scale", "none")
DIABETES_ROWS, DIABETES_FEATURES = 442, 10
COUNT_WEIGHTS = (1.0, -0.5, 0.25)  # log-rate slopes of the first count features; the rest carry no signal
COUNT_INTERCEPT = 0.5


def load_diabetes() -> tuple[Tensor, Tensor]:
    """The 442 x 10 raw features (age, sex, BMI, blood pressure, six blood serum measures) and targets 25..346."""
    from sklearn.datasets import load_diabetes as sklearn_diabetes

    data = sklearn_diabetes(scaled=False)
    return torch.tensor(data.data, dtype=torch.float64), torch.tensor(data.target, dtype=torch.float64)


def heteroscedastic_mean(x: Tensor) -> Tensor:
    """``f(x) = 3 + 3 x0 + sin(2 pi x1)``: the conditional mean (and median) of the heteroscedastic set."""
    return 3 + 3 * x[:, 0] + torch.sin(2 * math.pi * x[:, 1])


def heteroscedastic_std(x: Tensor) -> Tensor:
    """``sigma(x) = 0.1 + 0.9 x0``: the noise grows tenfold across the first feature."""
    return 0.1 + 0.9 * x[:, 0]


def make_heteroscedastic(num_rows: int, num_features: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Features uniform in [0, 1]; target ``f(x) + sigma(x) * N(0, 1)``, floored at 0.1 (a > 4.9-sigma event)."""
    x = torch.rand(num_rows, num_features, generator=generator, dtype=torch.float64)
    noise = torch.randn(num_rows, generator=generator, dtype=torch.float64)
    return x, (heteroscedastic_mean(x) + heteroscedastic_std(x) * noise).clamp_min(0.1)


def count_log_rate(x: Tensor) -> Tensor:
    """``log rate = 0.5 + x0 - 0.5 x1 + 0.25 x2``: the rate of the counts set spans about 0.3 to 9.5."""
    weights = torch.zeros(x.shape[1], dtype=x.dtype)
    k = min(len(COUNT_WEIGHTS), x.shape[1])
    weights[:k] = torch.tensor(COUNT_WEIGHTS[:k], dtype=x.dtype)
    return COUNT_INTERCEPT + x @ weights


def make_counts(num_rows: int, num_features: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Features uniform in [-1, 1]; target ``Poisson(exp(log rate))``."""
    x = torch.rand(num_rows, num_features, generator=generator, dtype=torch.float64) * 2 - 1
    return x, torch.poisson(count_log_rate(x).exp(), generator=generator)


def add_outliers(target: Tensor, fraction: float, shift: float, scale: float, generator: torch.Generator) -> Tensor:
    """Move a random ``fraction`` of the targets up by ``U(shift, 2 shift) * scale`` (rounded for counts)."""
    n = round(fraction * len(target))
    if n == 0:
        return target
    rows = torch.randperm(len(target), generator=generator)[:n]
    offsets = (1 + torch.rand(n, generator=generator, dtype=target.dtype)) * shift * scale
    if bool((target == target.round()).all()):
        offsets = offsets.round()
    target = target.clone()
    target[rows] += offsets
    return target


class TabularDataModule(L.LightningDataModule):
    """``diabetes``, ``heteroscedastic`` or ``counts`` rows as ``(features, target)`` float32 batches.

    ``outliers`` is the fraction of train and val targets moved up by ``U(1, 2) * outlier_shift`` standard
    deviations of the clean training targets; the test split is never contaminated.
    """

    def __init__(
        self,
        dataset: str = "diabetes",
        num_features: int = DIABETES_FEATURES,
        num_rows: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        target_scaling: str = "standard",
        outliers: float = 0.0,
        outlier_shift: float = 5.0,
        data_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        where = f"data '{dataset}'"
        if dataset not in DATASETS:
            raise ConfigError(f"data: unknown dataset {dataset!r}; tabular datasets are {', '.join(DATASETS)}")
        if dataset == "diabetes" and num_features != DIABETES_FEATURES:
            raise ConfigError(f"{where}: num_features must be {DIABETES_FEATURES} (got {num_features!r})")
        if dataset == "diabetes" and num_rows not in (None, DIABETES_ROWS):
            raise ConfigError(f"{where}: num_rows must be null or {DIABETES_ROWS}, the size of the set (got {num_rows!r})")
        for name, value in (("num_features", num_features), ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{where}: {name} must be a positive integer (got {value!r})")
        if num_rows is not None and (not isinstance(num_rows, int) or num_rows < 20):
            raise ConfigError(f"{where}: num_rows must be an integer >= 20 or null (got {num_rows!r})")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 < value < 0.5:
                raise ConfigError(f"{where}: {name} must be in (0, 0.5) (got {value!r})")
        if target_scaling not in SCALINGS:
            raise ConfigError(f"{where}: target_scaling must be one of {', '.join(SCALINGS)} (got {target_scaling!r})")
        if not 0 <= outliers < 0.5:
            raise ConfigError(f"{where}: outliers must be a fraction in [0, 0.5) (got {outliers!r})")
        if not outlier_shift > 0:
            raise ConfigError(f"{where}: outlier_shift must be > 0 (got {outlier_shift!r})")
        self.dataset, self.num_features = dataset, num_features
        self.num_rows = num_rows or (DIABETES_ROWS if dataset == "diabetes" else 2000)
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.target_scaling, self.outliers, self.outlier_shift = target_scaling, outliers, outlier_shift
        self.data_seed = data_seed
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        self.outlier_rows: dict[str, Tensor] = {}

    def generate(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """All rows of the dataset, raw (float64)."""
        if self.dataset == "diabetes":
            return load_diabetes()
        make = make_heteroscedastic if self.dataset == "heteroscedastic" else make_counts
        return make(self.num_rows, self.num_features, generator)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        generator = torch.Generator().manual_seed(self.data_seed)
        x, y = self.generate(generator)
        order = torch.randperm(len(y), generator=generator)
        n_test, n_val = round(self.test_fraction * len(y)), round(self.val_fraction * len(y))
        parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
        raw = {split: (x[rows], y[rows]) for split, rows in parts.items()}

        x_train, y_train = raw["train"]
        self.feature_mean, self.feature_std = x_train.mean(0), x_train.std(0).clamp_min(1e-12)
        clean_std = float(y_train.std())
        for split in ("train", "val"):
            xs, ys = raw[split]
            contaminated = add_outliers(ys, self.outliers, self.outlier_shift, clean_std, generator)
            self.outlier_rows[split] = contaminated != ys
            raw[split] = (xs, contaminated)
        self.outlier_rows["test"] = torch.zeros(len(parts["test"]), dtype=torch.bool)

        y_train = raw["train"][1]
        self.target_mean = float(y_train.mean()) if self.target_scaling == "standard" else 0.0
        self.target_std = float(y_train.std()) if self.target_scaling != "none" else 1.0
        self.splits = {
            split: (
                ((xs - self.feature_mean) / self.feature_std).float(),
                ((ys - self.target_mean) / self.target_std).float(),
            )
            for split, (xs, ys) in raw.items()
        }

    def loader(self, split: str, train: bool) -> DataLoader | DeviceBatches:
        """Batches of one in-memory split, shuffled (by the seeded global RNG) when training.

        In one process the rows are cut out of tensors on the training device (no per-row DataLoader
        work, no host copies); with several processes a DataLoader lets Lightning shard them.
        """
        features, target = self.splits[split]
        batch_size = self.batch_size if train else self.eval_batch_size
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
            return DeviceBatches((features.to(device), target.to(device)), batch_size, shuffle=train, drop_last=train)
        return DataLoader(
            TensorDataset(features, target),
            batch_size=batch_size,
            shuffle=train,
            drop_last=train and len(target) > self.batch_size,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", train=False)
