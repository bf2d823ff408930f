"""Installed packages add losses through the ``loss_recipes.losses`` entry points, read at the first lookup."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import losses
from losses import registry
from recipes.run.checks import check_config


class PluginHinge(nn.Module):
    """What a plug-in package ships: a loss class with a kind, filed under its entry point's name."""

    kind = "classification"

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.margin, self.reduction = margin, reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.multi_margin_loss(logits, target, margin=self.margin, reduction=self.reduction)


class PluginWithoutKind(nn.Module):
    def forward(self, logits: Tensor, target: Tensor) -> Tensor:  # pragma: no cover - never registered
        return logits.sum()


@pytest.fixture
def installed(monkeypatch):
    """``installed(name=value, ...)``: entry points as an installed distribution would declare them."""

    def install(**points: str) -> None:
        declared = [importlib.metadata.EntryPoint(n, v, registry.ENTRY_POINTS) for n, v in points.items()]

        def entry_points(group: str | None = None, **kwargs):
            return [p for p in declared if p.group == group]

        monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
        monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # what the test registers goes away
        monkeypatch.setattr(registry, "_entry_points_loaded", False)

    return install


def test_an_entry_point_class_is_registered_under_its_name_at_first_lookup(installed):
    installed(zz_plugin_hinge=f"{__name__}:PluginHinge")
    assert "zz_plugin_hinge" in losses.available("classification")
    assert "zz_plugin_hinge" not in losses.available("boxes")
    assert losses.kind_of("zz_plugin_hinge") == "classification"
    loss = losses.build("zz_plugin_hinge", margin=0.5)
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    assert torch.equal(loss(logits, target), F.multi_margin_loss(logits, target, margin=0.5))
    assert loss.name == "zz_plugin_hinge"


def test_entry_points_are_read_once(installed, monkeypatch):
    installed(zz_plugin_hinge=f"{__name__}:PluginHinge")
    losses.available()
    reads = []
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kwargs: reads.append(kwargs) or [])
    assert "zz_plugin_hinge" in losses.available()
    assert reads == []


def test_a_plugin_loss_fills_a_slot_by_name(installed, make_config):
    installed(zz_plugin_hinge=f"{__name__}:PluginHinge")
    built = check_config(make_config("~loss", "+loss.name=zz_plugin_hinge", "+loss.margin=2.0"))["loss"]
    assert isinstance(built, PluginHinge) and built.margin == 2.0


def test_a_broken_entry_point_warns_and_leaves_the_other_losses_usable(installed):
    installed(
        zz_missing="no_such_plugin_pkg.losses:Loss",
        zz_kindless=f"{__name__}:PluginWithoutKind",
        zz_plugin_hinge=f"{__name__}:PluginHinge",
    )
    with pytest.warns(UserWarning) as caught:
        names = losses.available()
    messages = [str(w.message) for w in caught]
    assert any("'zz_missing' = 'no_such_plugin_pkg.losses:Loss'" in m and "ModuleNotFoundError" in m for m in messages)
    assert any("'zz_kindless'" in m and "unknown loss kind ''" in m for m in messages)
    assert "zz_plugin_hinge" in names and "ce" in names
    assert "zz_missing" not in names and "zz_kindless" not in names
