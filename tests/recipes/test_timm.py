"""model=timm: the optional extra builds and trains; without it, one message naming the extra."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from losses import ConfigError
from recipes.models import TimmClassifier
from train import train


def test_without_timm_the_message_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    needs = r"model=timm needs timm, the optional extra 'timm': pip install 'loss-recipes\[timm\]'"
    with pytest.raises(ConfigError, match=needs):
        TimmClassifier("resnet18")


def test_a_timm_resnet18_trains_on_grey_digits(smoke_config, tmp_path):
    pytest.importorskip("timm")
    metrics = train(smoke_config("model=timm", "model.name=resnet18"))
    assert math.isfinite(metrics["test/acc"]) and math.isfinite(metrics["train/loss_epoch"])
    for path in (tmp_path / "checkpoints").glob("*.ckpt"):
        torch.load(path, weights_only=True)


def test_a_timm_encoder_without_head_exposes_its_feature_dim_and_unknown_names_list_close_ones():
    pytest.importorskip("timm")
    encoder = TimmClassifier("resnet18", num_outputs=0, in_channels=1, image_size=28)
    assert encoder.feature_dim == 512 and encoder(torch.randn(2, 1, 28, 28)).shape == (2, 512)
    with pytest.raises(ConfigError, match=r"name must be a timm model \(got 'resnet181'\); close matches: resnet18"):
        TimmClassifier("resnet181")
