"""Bad configurations stop before any data loads, with one message naming the setting and the fix."""

from __future__ import annotations

import subprocess

import pytest
from torch import nn

import losses
from losses import ConfigError
from losses.base import Loss
from losses.registry import _REGISTRY
from recipes.run.checks import check_config
from tests.helpers.runs import run_train


@pytest.fixture
def box_loss_registered():
    """A stand-in loss of kind 'boxes' when the zoo has none yet (the real giou replaces it)."""
    if "giou" in _REGISTRY:
        yield "giou"
        return

    @losses.register("giou", kind="boxes")
    class StandIn(Loss):
        def forward(self, pred, target):  # pragma: no cover - never called
            return nn.functional.l1_loss(pred, target)

    yield "giou"
    del _REGISTRY["giou"]


def test_loss_of_the_wrong_kind_names_kinds_fitting_losses_and_tasks(make_config, box_loss_registered):
    with pytest.raises(ConfigError) as err:
        check_config(make_config("loss.name=giou"))
    message = str(err.value)
    assert "loss 'giou' is of kind 'boxes'" in message
    assert "takes kind 'classification'" in message
    for name in losses.available("classification"):
        assert name in message


def test_unknown_loss_name_lists_the_valid_ones(make_config):
    with pytest.raises(ConfigError, match="'nope' is not registered; available losses: .*focal"):
        check_config(make_config("loss.name=nope"))


@pytest.mark.parametrize(
    "override,message",
    [
        ("loss.label_smoothing=1.5", "loss 'ce': label_smoothing must be < 1 (got 1.5)"),
        ("loss.reduction=avg", "reduction must be one of none, mean, sum"),
    ],
)
def test_bad_hyperparameter_is_refused_at_check_time(make_config, override, message):
    with pytest.raises(ConfigError) as err:
        check_config(make_config(override))
    assert message in str(err.value)


def test_focal_gamma_below_zero_is_refused(make_config):
    with pytest.raises(ConfigError, match=r"loss 'focal': gamma must be >= 0 \(got -1\)"):
        check_config(make_config("loss=focal", "loss.gamma=-1"))


def train_py(*overrides: str, data_dir) -> subprocess.CompletedProcess:
    """``python train.py`` with its data and run folder under ``data_dir``."""
    env = {"DATA_DIR": str(data_dir)}
    return run_train("logger=csv", f"hydra.run.dir={data_dir / 'run'}", *overrides, env_extra=env, timeout=120)


def test_train_py_stops_before_loading_data_with_one_message(tmp_path):
    result = train_py("loss=focal", "loss.gamma=-1", data_dir=tmp_path)
    assert result.returncode == 2
    assert "error: loss 'focal': gamma must be >= 0 (got -1)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mnist5k.pt").exists()  # no data was read


def test_train_py_unknown_config_option_lists_the_options(tmp_path):
    result = train_py("loss=nope", data_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: loss: there is no option 'nope' (the options are ") and "focal" in result.stderr


@pytest.mark.parametrize(
    "value,low_open,high_open,message",
    [
        (0.5, True, True, r"data 'x': val_fraction must be in \(0, 0.5\) \(got 0.5\)"),  # an open end excludes it
        (0, True, True, r"val_fraction must be in \(0, 0.5\) \(got 0\)"),
        (0.5, False, False, None),  # a closed end includes it
        (-0.1, False, True, r"val_fraction must be in \[0, 0.5\) \(got -0.1\)"),
        ("0.1", True, True, r"val_fraction must be in \(0, 0.5\) \(got '0.1'\)"),  # a string is no number
        (float("nan"), True, True, r"\(got nan\)"),
        (True, False, False, r"\(got True\)"),
    ],
)
def test_check_interval_names_the_interval_and_the_value(value, low_open, high_open, message):
    from losses.errors import check_interval

    if message is None:
        assert check_interval("data 'x'", "val_fraction", value, 0, 0.5, low_open, high_open) == 0.5
        return
    with pytest.raises(ConfigError, match=message):
        check_interval("data 'x'", "val_fraction", value, 0, 0.5, low_open, high_open)
