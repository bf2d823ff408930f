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

import torch
from torch import Tensor

from losses.errors import check, check_integer, check_interval, check_number
from recipes.data.base import InMemoryDataModule, Splits, check_fractions

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


class TabularDataModule(InMemoryDataModule):
    """``diabetes``, ``heteroscedastic`` or ``counts`` rows as ``(features, target)`` float32 batches.

    ``outliers`` is the fraction of train and val targets moved up by ``U(1, 2) * outlier_shift`` standard
    deviations of the clean training targets; the test split is never contaminated. In one process the rows
    are cut out of tensors on the training device (no per-row DataLoader work); with several processes a
    DataLoader lets Lightning shard them.
    """

    fields = ("features", "target")
    batches = ("rows+targets",)
    slice_on_cpu = True

    def __init__(
        self,
        name: str | None = None,
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
        on_device: str | bool = "auto",
    ) -> None:
        super().__init__(name or dataset, batch_size, eval_batch_size, num_workers, on_device)
        owner = self.owner
        check(owner, dataset in DATASETS, f"dataset must be one of {', '.join(DATASETS)}", dataset)
        check_integer(owner, "num_features", num_features, low=1)
        if dataset == "diabetes":
            check(owner, num_features == DIABETES_FEATURES, f"num_features must be {DIABETES_FEATURES}", num_features)
            rows = num_rows in (None, DIABETES_ROWS)
            check(owner, rows, f"num_rows must be null or {DIABETES_ROWS}, the size of the set", num_rows)
        if num_rows is not None:
            check_integer(owner, "num_rows", num_rows, low=20)
        check_fractions(owner, val_fraction, test_fraction)
        check(owner, target_scaling in SCALINGS, f"target_scaling must be one of {', '.join(SCALINGS)}", target_scaling)
        check_interval(owner, "outliers", outliers, 0, 0.5, low_open=False)
        check_number(owner, "outlier_shift", outlier_shift, low=0, low_open=True)
        self.dataset, self.num_features = dataset, num_features
        self.num_rows = num_rows or (DIABETES_ROWS if dataset == "diabetes" else 2000)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.target_scaling, self.outliers, self.outlier_shift = target_scaling, outliers, outlier_shift
        self.data_seed = data_seed
        self.outlier_rows: dict[str, Tensor] = {}

    def generate(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """All rows of the dataset, raw (float64)."""
        if self.dataset == "diabetes":
            return load_diabetes()
        make = make_heteroscedastic if self.dataset == "heteroscedastic" else make_counts
        return make(self.num_rows, self.num_features, generator)

    def load(self) -> Splits:
        """Seeded split, outliers in train and val, then features and targets scaled by the training split."""
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
        return {
            split: (
                ((xs - self.feature_mean) / self.feature_std).float(),
                ((ys - self.target_mean) / self.target_std).float(),
            )
            for split, (xs, ys) in raw.items()
        }
