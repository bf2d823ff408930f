"""``python -m losses.plot``: the 1-D inputs mean what the docstring says, and the PNGs are written."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

import losses
from losses import plot
from losses.base import Loss
from losses.registry import _REGISTRY, LossSpec


def stand_in(name: str, kind: str, fn):
    """A loss class computing ``fn`` (a torch reference), filed under ``name`` for one test."""

    class StandIn(Loss):
        def forward(self, *inputs):
            return self.reduce(fn(*inputs))

    signature = inspect.signature(fn)  # forward shows fn's arguments, as a real loss's would
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    StandIn.forward.__signature__ = signature.replace(parameters=[this, *signature.parameters.values()])
    StandIn.name, StandIn.kind = name, kind
    return LossSpec(name, kind, StandIn)


def distance(e1, e2):
    return (e1 - e2).norm(dim=1)


def contrastive(e1, e2, y):
    d = distance(e1, e2)
    return torch.where(y > 0, 0.5 * d**2, 0.5 * torch.clamp(1 - d, min=0) ** 2)


def refuses_at_or_below_minus_one(pred, target):
    if bool((pred <= -1).any()):
        raise ValueError("loss 'zz_msle': pred must be > -1")
    return (torch.log1p(pred) - torch.log1p(target)) ** 2


def needs_variance(mean, target, var):
    assert torch.equal(var, torch.ones_like(var))
    return 0.5 * (mean - target) ** 2 / var


# torch references for the margin family, with margin 1 (margin_ranking 0.5)
MARGIN_STAND_INS = {
    "hinge_embedding": ("pair", lambda e1, e2, y: F.hinge_embedding_loss(distance(e1, e2), y, reduction="none")),
    "contrastive": ("pair", contrastive),
    "cosine_embedding": ("pair", lambda e1, e2, y: F.cosine_embedding_loss(e1, e2, y, reduction="none")),
    "triplet": ("triplet", lambda a, p, n: torch.clamp(distance(a, p) - distance(a, n) + 1, min=0)),
    "margin_ranking": (
        "triplet",
        lambda a, p, n: F.margin_ranking_loss(
            F.cosine_similarity(a, p), F.cosine_similarity(a, n), torch.ones(len(a), dtype=a.dtype), margin=0.5, reduction="none"
        ),
    ),
}

# what each curve must be as a function of the plotted x: {label: (value(x), derivative(x))}
EXPECTED = {
    "hinge": {"y = +1": (lambda x: torch.clamp(1 - x, min=0), lambda x: -(x < 1).double())},
    "hinge_embedding": {
        "similar (y = +1)": (lambda x: x, torch.ones_like),
        "dissimilar (y = -1)": (lambda x: torch.clamp(1 - x, min=0), lambda x: -(x < 1).double()),
    },
    "contrastive": {
        "similar (y = +1)": (lambda x: x**2 / 2, lambda x: x),
        "dissimilar (y = -1)": (lambda x: torch.clamp(1 - x, min=0) ** 2 / 2, lambda x: -torch.clamp(1 - x, min=0)),
    },
    "cosine_embedding": {
        "similar (y = +1)": (lambda x: 1 - x, lambda x: -torch.ones_like(x)),
        "dissimilar (y = -1)": (lambda x: torch.clamp(x, min=0), lambda x: (x > 0).double()),
    },
    "triplet": {"d(a, n) = 2": (lambda x: torch.clamp(x + 1, min=0), lambda x: (x > -1).double())},
    "margin_ranking": {"s(a, n) = 0": (lambda x: torch.clamp(0.5 - x, min=0), lambda x: -(x < 0.5).double())},
}
KINKS = {"hinge": 1, "hinge_embedding": 1, "contrastive": 1, "cosine_embedding": 0, "triplet": -1, "margin_ranking": 0.5}


@pytest.fixture
def margin_family(monkeypatch):
    """The margin family as torch references, whatever the zoo has registered (hinge is the real one)."""
    for name, (kind, fn) in MARGIN_STAND_INS.items():
        monkeypatch.setitem(_REGISTRY, name, stand_in(name, kind, fn))


@pytest.fixture
def regression_family(monkeypatch):
    monkeypatch.setitem(_REGISTRY, "zz_square", stand_in("zz_square", "regression", lambda p, t: (p - t) ** 2))
    monkeypatch.setitem(_REGISTRY, "zz_msle", stand_in("zz_msle", "regression", refuses_at_or_below_minus_one))
    monkeypatch.setitem(_REGISTRY, "zz_gauss", stand_in("zz_gauss", "regression", needs_variance))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_margin_curves_are_the_loss_as_a_function_of_the_documented_variable(margin_family, name):
    found = plot.curves(name, plot.MARGIN[name], points=61)
    assert {c.label for c in found} == set(EXPECTED[name])
    for curve in found:
        value, derivative = EXPECTED[name][curve.label]
        away = (curve.x - KINKS[name]).abs() > 0.05
        torch.testing.assert_close(curve.value[away], value(curve.x)[away], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(curve.grad[away], derivative(curve.x)[away], rtol=1e-4, atol=1e-4)


def test_regression_curves_use_the_residual_and_drop_refused_points(regression_family):
    square = plot.curves("zz_square", plot.regression_plan("zz_square"), points=61)[0]
    torch.testing.assert_close(square.value, square.x**2)
    torch.testing.assert_close(square.grad, 2 * square.x)
    msle = plot.curves("zz_msle", plot.regression_plan("zz_msle"), points=61)[0]
    refused = 1 + msle.x <= -1  # pred = 1 + r
    assert refused.any() and msle.value[refused].isnan().all() and not msle.value[~refused].isnan().any()
    gauss = plot.curves("zz_gauss", plot.regression_plan("zz_gauss"), points=61)[0]
    torch.testing.assert_close(gauss.value, gauss.x**2 / 2)


def test_plot_writes_pngs_for_both_families_and_names_what_it_skips(tmp_path, regression_family):
    lines: list[str] = []
    written = plot.plot_all(tmp_path, points=21, log=lines.append)
    assert sorted(p.name for p in written) == ["margin.png", "regression.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    absent = [name for name in plot.MARGIN if name not in losses.available()]
    for name in absent:
        assert any(f"skipping {name!r}" in line for line in lines)


def test_a_family_with_no_registered_loss_is_reported_not_drawn(tmp_path, monkeypatch):
    for name in losses.available("regression"):
        monkeypatch.delitem(_REGISTRY, name)
    lines: list[str] = []
    written = plot.plot_all(tmp_path, points=11, log=lines.append)
    assert not (tmp_path / "regression.png").exists()
    assert any(line.startswith("regression: no registered losses") for line in lines)
    assert [p.name for p in written] == ["margin.png"]  # hinge is registered
