"""A user's own loss class plugs into a slot through ``_target_`` when it declares a kind, checked like a registered one."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from losses import ConfigError
from recipes.run.checks import check_config
from tests.helpers.sizes import DETECTION_TINY
from tests.recipes.own_losses import ScaledL1Box, SmoothedCrossEntropy
from train import train

OWN = "tests.recipes.own_losses"
TINY_MODEL = ("model.widths=[8,16]",)


def own_loss(slot: str, cls: str, *hparams: str) -> tuple[str, ...]:
    """The overrides that replace a slot's loss with a class of the test module: ``~slot +slot._target_=...``."""
    return (f"~{slot}", f"+{slot}._target_={OWN}.{cls}", *(f"+{slot}.{h}" for h in hparams))


def test_an_own_loss_trains_a_smoke_classification_run(smoke_config):
    SmoothedCrossEntropy.training_calls.clear()
    metrics = train(smoke_config(*TINY_MODEL, *own_loss("loss", "SmoothedCrossEntropy", "smoothing=0.1")))
    assert len(SmoothedCrossEntropy.training_calls) == 4  # debug=smoke: limit_train_batches=4
    assert all(math.isfinite(v) and v > 0 for v in SmoothedCrossEntropy.training_calls)
    assert metrics["train/loss_epoch"] == pytest.approx(sum(SmoothedCrossEntropy.training_calls) / 4, rel=1e-5)
    assert math.isfinite(metrics["test/acc"])


def test_an_own_loss_is_built_with_its_hyperparameters_and_named_after_its_class(make_config):
    cfg = make_config(*own_loss("loss", "SmoothedCrossEntropy", "smoothing=0.2", "reduction=sum"))
    loss = check_config(cfg)["loss"]
    assert isinstance(loss, SmoothedCrossEntropy)
    assert (loss.smoothing, loss.reduction, loss.name, loss.kind) == (0.2, "sum", "SmoothedCrossEntropy", "classification")
    logits, target = torch.randn(5, 10), torch.arange(5)
    assert torch.equal(loss(logits, target), F.cross_entropy(logits, target, label_smoothing=0.2, reduction="sum"))
    assert cfg.logger.wandb.name == "classification-SmoothedCrossEntropy"  # the W&B run is named after it


def test_an_own_loss_of_the_wrong_kind_names_the_slot_and_the_kinds_it_takes(make_config):
    with pytest.raises(ConfigError) as err:
        check_config(make_config(*own_loss("loss", "ScaledL1Box")))
    message = str(err.value)
    assert message.startswith(f"loss._target_={OWN}.ScaledL1Box: loss class 'ScaledL1Box' is of kind 'boxes'")
    assert "slot 'loss' of task 'classification' takes kind 'classification'. Losses that fit: bce_logits, ce" in message
    assert "fits task detection" in message


def test_a_config_kind_the_slot_does_not_take_is_refused_too(make_config):
    with pytest.raises(ConfigError, match="loss class 'KindlessLoss' is of kind 'masks', but slot 'loss'"):
        check_config(make_config(*own_loss("loss", "KindlessLoss", "kind=masks")))


def test_an_own_loss_without_a_kind_says_how_to_declare_one(make_config):
    with pytest.raises(ConfigError) as err:
        check_config(make_config(*own_loss("loss", "KindlessLoss")))
    message = str(err.value)
    assert f"loss._target_: loss class '{OWN}.KindlessLoss' declares no kind" in message
    assert 'kind = "classification"' in message and "loss.kind=classification" in message


def test_a_kind_in_the_config_declares_it_and_is_not_passed_to_the_constructor(make_config):
    loss = check_config(make_config(*own_loss("loss", "KindlessLoss", "kind=classification")))["loss"]
    assert (type(loss).__name__, loss.kind, loss.name) == ("KindlessLoss", "classification", "KindlessLoss")


def test_an_unknown_config_kind_lists_the_kinds(make_config):
    with pytest.raises(ConfigError, match="loss.kind: unknown loss kind 'classifcation'.*kinds are classification, regression"):
        check_config(make_config(*own_loss("loss", "KindlessLoss", "kind=classifcation")))


def test_a_target_that_does_not_import_is_one_message(make_config):
    with pytest.raises(ConfigError, match=r"loss._target_: cannot import 'my_pkg.MyLoss' \(ModuleNotFoundError"):
        check_config(make_config("~loss", "+loss._target_=my_pkg.MyLoss"))
    with pytest.raises(ConfigError, match=rf"loss._target_: cannot import '{OWN}.Nope' \(AttributeError"):
        check_config(make_config(*own_loss("loss", "Nope")))


@pytest.mark.parametrize(
    "hparams,message",
    [
        (("smoothing=1.5",), r"loss: SmoothedCrossEntropy\(smoothing=...\) failed: ValueError: smoothing must be in \[0, 1\)"),
        (("gamma=2",), r"failed: TypeError: .*'gamma'.*; its arguments are smoothing, reduction \(set them with \+loss.ARG"),
    ],
)
def test_a_constructor_error_is_one_config_error_naming_the_slot(make_config, hparams, message):
    with pytest.raises(ConfigError, match=message):
        check_config(make_config(*own_loss("loss", "SmoothedCrossEntropy", *hparams)))


def test_a_subclass_of_the_project_loss_is_named_after_its_class_in_its_messages(make_config):
    loss = check_config(make_config(*own_loss("loss", "PolyFocal", "gamma=0")))["loss"]
    logits, target = torch.randn(6, 10), torch.arange(6)
    assert loss.name == "PolyFocal" and torch.allclose(loss(logits, target), F.cross_entropy(logits, target))  # gamma 0: CE
    with pytest.raises(ConfigError, match=r"^loss: loss 'PolyFocal': gamma must be >= 0 \(got -1"):
        check_config(make_config(*own_loss("loss", "PolyFocal", "gamma=-1")))


def test_hyperparameters_left_from_the_default_loss_are_named_with_the_fix(make_config):
    with pytest.raises(ConfigError, match=r"SmoothedCrossEntropy\(weight=..., ignore_index=.*empty the slot with '~loss'"):
        check_config(make_config("~loss.name", f"+loss._target_={OWN}.SmoothedCrossEntropy"))


def test_a_name_left_beside_the_target_is_refused_with_the_fix(make_config):
    with pytest.raises(ConfigError, match=r"loss: both name=ce .* and _target_=my_pkg.MyLoss .*'~loss' '\+loss._target_"):
        check_config(make_config("+loss._target_=my_pkg.MyLoss"))


def test_an_empty_slot_says_an_own_class_can_fill_it(make_config):
    with pytest.raises(ConfigError, match=r"needs a loss in slot 'loss'.*'~loss' '\+loss._target_=my_pkg.MyLoss'"):
        check_config(make_config("~loss"))


def test_an_own_box_loss_fills_the_detection_box_loss_slot(smoke_config, tmp_path):
    cfg = smoke_config("task=detection", *DETECTION_TINY, *own_loss("box_loss", "ScaledL1Box", "scale=0.5"))
    built = check_config(cfg)["box_loss"]
    assert isinstance(built, ScaledL1Box) and (built.scale, built.name, built.kind) == (0.5, "scaled_l1_box", "boxes")
    metrics = train(cfg)
    assert math.isfinite(metrics["train/box_loss_epoch"]) and metrics["train/box_loss_epoch"] > 0
    assert math.isfinite(metrics["test/map"])
