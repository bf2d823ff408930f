"""Long-tailed and noisy-label training splits: exact counts, exact noise, seeded, val/test untouched."""

from __future__ import annotations

import pytest
import torch

from losses import ConfigError
from recipes.data.images import ImageDataModule
from recipes.data.variants import inverse_frequency_weights, long_tail_counts

# 400 * imbalance^(-c/9), rounded, worked out by hand for mnist5k's 400 training digits per class
LONG_TAIL_100 = [400, 240, 144, 86, 52, 31, 19, 11, 7, 4]
LONG_TAIL_10 = [400, 310, 240, 186, 144, 111, 86, 67, 52, 40]


def datamodule(data_dir, **kwargs) -> ImageDataModule:
    dm = ImageDataModule(data_dir=str(data_dir), **kwargs)
    dm.setup()
    return dm


@pytest.mark.parametrize(("imbalance", "expected"), [(100, LONG_TAIL_100), (10, LONG_TAIL_10)])
def test_long_tailed_training_split_has_the_exponential_profile_exactly(data_dir, imbalance, expected):
    dm = datamodule(data_dir, imbalance=imbalance)
    assert long_tail_counts(400, 10, imbalance) == expected
    assert torch.bincount(dm.splits["train"][1], minlength=10).tolist() == expected


def test_long_tail_keeps_validation_and_test_balanced_and_unchanged(data_dir):
    plain, tailed = datamodule(data_dir), datamodule(data_dir, imbalance=100)
    for split in ("val", "test"):
        assert torch.equal(tailed.splits[split][0], plain.splits[split][0])
        assert torch.equal(tailed.splits[split][1], plain.splits[split][1])
        assert torch.bincount(tailed.splits[split][1]).tolist() == [50] * 10


def test_long_tail_picks_real_training_examples_and_follows_the_split_seed(data_dir):
    plain, tailed = datamodule(data_dir), datamodule(data_dir, imbalance=10)
    rows = {tuple(x.flatten().tolist()[::7]) for x in plain.splits["train"][0]}
    assert all(tuple(x.flatten().tolist()[::7]) in rows for x in tailed.splits["train"][0][:50])
    again, other = datamodule(data_dir, imbalance=10), datamodule(data_dir, imbalance=10, split_seed=1)
    assert torch.equal(again.splits["train"][0], tailed.splits["train"][0])
    assert torch.bincount(other.splits["train"][1]).tolist() == LONG_TAIL_10
    assert not torch.equal(other.splits["train"][0][:40], tailed.splits["train"][0][:40])


def test_label_noise_changes_exactly_that_fraction_of_training_labels_and_nothing_else(data_dir):
    clean, noisy = datamodule(data_dir), datamodule(data_dir, label_noise=0.2)
    changed = noisy.splits["train"][1] != clean.splits["train"][1]
    assert int(changed.sum()) == 800  # 20% of 4,000, every chosen label moved to another class
    assert torch.equal(noisy.splits["train"][0], clean.splits["train"][0])
    for split in ("val", "test"):
        assert torch.equal(noisy.splits[split][1], clean.splits[split][1])
    shifts = (noisy.splits["train"][1] - clean.splits["train"][1])[changed] % 10
    assert set(shifts.tolist()) == set(range(1, 10))  # drawn from all nine other classes


def test_label_noise_on_a_long_tail_counts_from_the_subsample(data_dir):
    tailed, both = datamodule(data_dir, imbalance=100), datamodule(data_dir, imbalance=100, label_noise=0.1)
    assert int((both.splits["train"][1] != tailed.splits["train"][1]).sum()) == round(0.1 * sum(LONG_TAIL_100))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"imbalance": 0.5}, r"imbalance must be null or a finite ratio >= 1 .*\(got 0.5\)"),
        ({"imbalance": "high"}, r"imbalance must be null or a finite ratio >= 1"),
        ({"label_noise": 1.0}, r"label_noise must be in \[0, 1\) \(got 1.0\)"),
        ({"label_noise": -0.1}, r"label_noise must be in \[0, 1\) \(got -0.1\)"),
    ],
)
def test_bad_imbalance_or_label_noise_is_a_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ImageDataModule(**kwargs)


def test_inverse_frequency_weights_follow_one_over_the_class_counts():
    weights = inverse_frequency_weights(100, 10)
    assert sum(weights) == pytest.approx(10)
    assert weights[-1] / weights[0] == pytest.approx(100)
    counts = LONG_TAIL_100
    for c in range(1, 10):  # w_c n_c is the same for every class, up to the rounding of n_c
        assert weights[c] * counts[c] == pytest.approx(weights[0] * counts[0], rel=0.07)
    assert inverse_frequency_weights(None, 10) is None
