"""Out-of-range hyperparameters are refused for every registered loss, by the hyperparameter's name.

A loss is tested by being registered with a config in configs/loss/: every numeric hyperparameter of
its config must refuse NaN and +-Inf, and the hyperparameters named below must refuse values outside
the range that name has in torch and in the papers. The refusal is the house ConfigError naming the
loss, the hyperparameter and the value: ``loss 'nt_xent': temperature must be > 0 (got 0)``.
"""

from __future__ import annotations

import inspect
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


# ----- values inside the range of the type that construct but fail (or train nothing) in a task's step ----------
def takes(arg: str) -> list[str]:
    """Every registered loss whose constructor has hyperparameter ``arg``."""
    return [name for name in losses.available() if arg in inspect.signature(losses.spec(name).cls).parameters]


@pytest.mark.parametrize("name", takes("temperature"))
@pytest.mark.parametrize("temperature", [1e-30, 1e-5])
def test_a_temperature_below_1e_minus_4_is_refused_as_float32_rounding_would_swamp_the_loss(name, temperature):
    with pytest.raises(ConfigError, match=rf"^loss '{name}': temperature must be >= 0.0001: .* \(got {temperature:g}\)$"):
        losses.build(name, temperature=temperature)
    assert losses.build(name, temperature=1e-4).temperature == 1e-4  # the bound itself trains


@pytest.mark.parametrize("name", takes("smooth"))
def test_a_smooth_that_outweighs_any_mask_is_refused_as_the_loss_would_be_0_at_every_step(name):
    with pytest.raises(ConfigError, match=rf"^loss '{name}': smooth must be <= 10000: .* \(got 1e\+30\)$"):
        losses.build(name, smooth=1e30)
    assert losses.build(name, smooth=1e4).smooth == 1e4


def test_the_temperature_and_smooth_bounds_apply_to_todays_losses():
    assert set(takes("temperature")) == {"nt_xent", "info_nce"} and set(takes("smooth")) == {"dice", "jaccard", "tversky"}


@pytest.mark.parametrize("tau", [[0.5, 0.5], [0.1, 0.5, 0.9, 0.1]])
def test_a_repeated_quantile_tau_is_refused_naming_the_repeat(tau):
    repeated = sorted({t for t in tau if tau.count(t) > 1})
    with pytest.raises(ConfigError, match=rf"^loss 'quantile': tau must list each quantile once: \{repeated}") as err:
        losses.build("quantile", tau=tau)
    assert str(err.value).endswith(f"(got {tau})")
    assert losses.build("quantile", tau=[0.1, 0.5, 0.9]).num_quantiles == 3


@pytest.mark.parametrize(
    "name,arg,consequence",
    [
        ("ce", "weight", "the weighted mean is 0/0 (NaN)"),  # torch divides by the targets' summed weights
        ("label_smoothing", "weight", "the weighted mean is 0/0 (NaN)"),
        ("focal", "alpha", "the loss is 0 for every sample"),
        ("bce_logits", "weight", "the loss is 0 for every sample"),
    ],
)
def test_class_weights_that_are_all_zero_are_refused_with_what_they_would_do(name, arg, consequence):
    with pytest.raises(ConfigError) as err:
        losses.build(name, **{arg: [0.0, 0.0, 0.0]})
    assert str(err.value) == (
        f"loss '{name}': {arg} must have a value > 0: with every class weighted 0 {consequence}"
        + (" and the sum 0" if "NaN" in consequence else " and nothing is learnt")
        + " (got [0.0, 0.0, 0.0])"
    )
    assert losses.build(name, **{arg: [0.0, 0.0, 1.0]}) is not None  # one class left out is a valid weighting
