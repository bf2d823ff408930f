"""Out-of-range hyperparameters are refused for every registered loss, by the hyperparameter's name.

A loss is tested by being registered with a config in configs/loss/: every numeric hyperparameter of
its config must refuse NaN and +-Inf, and the hyperparameters named below must refuse values outside
the range that name has in torch and in the papers. The refusal is the house ConfigError naming the
loss, the hyperparameter and the value: ``loss 'nt_xent': temperature must be > 0 (got 0)``.
"""

from __future__ import annotations

import math

import pytest
import yaml

import losses
from losses import ConfigError
from tests.helpers.configs import CONFIGS

# values outside the valid range of every loss that takes a hyperparameter of this name
INVALID: dict[str, tuple[float, ...]] = {
    "label_smoothing": (-0.1, 1.0, 1.5),  # [0, 1)
    "temperature": (0.0, -0.5),  # > 0
    "tau": (0.0, 1.0, -0.5, 1.5),  # quantile level in (0, 1)
    "gamma": (-1.0,),  # focal exponent >= 0
    "beta": (-1.0,),  # smooth_l1 threshold, beta-VAE weight, class-balanced beta, Tversky weight: >= 0
    "delta": (0.0, -1.0),  # Huber threshold > 0
    "margin": (-2.5,),  # >= 0, or >= -1 for cosine similarity margins
    "eps": (-1.0,),  # > 0 or >= 0
    "sigma": (0.0, -1.0),  # a standard deviation > 0
}


def loss_configs() -> list[tuple[str, dict]]:
    """(loss name, hyperparameters) from every configs/loss/*.yaml whose loss is registered."""
    found = []
    for path in sorted(CONFIGS.glob("loss/*.yaml")):
        hparams = yaml.safe_load(path.read_text())
        name = hparams.pop("name")
        if name in losses.available():
            found.append((name, hparams))
    return found


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


CASES = [
    pytest.param(name, hparams, arg, bad, id=f"{name}-{arg}={bad}")
    for name, hparams in loss_configs()
    for arg, value in hparams.items()
    if is_number(value)
    for bad in (math.nan, math.inf, -math.inf, *INVALID.get(arg, ()))
]


@pytest.mark.parametrize("name,hparams,arg,bad", CASES)
def test_an_out_of_range_hyperparameter_is_refused_naming_the_loss_and_the_setting(name, hparams, arg, bad):
    with pytest.raises(ConfigError) as err:
        losses.build(name, **{**hparams, arg: bad})
    message = str(err.value)
    assert message.startswith(f"loss '{name}': ") and arg in message, message


def test_the_table_covers_the_hyperparameters_the_issue_names():
    assert {"margin", "temperature", "beta", "tau", "label_smoothing"} <= set(INVALID)
    assert any(arg in INVALID for _, hparams in loss_configs() for arg in hparams)  # applies to today's losses
