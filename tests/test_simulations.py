"""Zheng et al. 2020's box-regression simulation: geometry of the cases and convergence of each loss."""

from __future__ import annotations

import json

import pytest
import torch

from losses.errors import ConfigError
from recipes.experiments.simulations import box_iou, box_regression, regress, simulation_boxes


def test_simulation_cases_are_every_anchor_against_every_target():
    anchors, targets = simulation_boxes(points=3, radius=3.0, seed=0)
    assert anchors.shape == targets.shape == (3 * 7 * 7 * 7, 4)
    areas = (targets[:, 2:] - targets[:, :2]).prod(-1)
    torch.testing.assert_close(areas, torch.ones_like(areas))  # every target has area 1
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert ((centres - 10.0).norm(dim=1) <= 3.0 + 1e-9).all()  # anchors sit in the disc around the targets


def test_every_loss_improves_iou_and_diou_beats_iou_loss(tmp_path):
    metrics = box_regression(str(tmp_path), points=20, iterations=40, seed=0)
    anchors, targets = simulation_boxes(points=20, radius=3.0, seed=0)
    start = float(box_iou(anchors, targets).mean())
    for name in ("l1", "giou", "diou", "ciou"):
        assert metrics[f"sim/{name}/final_iou"] > start + 0.1, name
    # IoU loss has no gradient for anchors that miss their target, so it ends behind DIoU
    assert metrics["sim/diou/final_iou"] > metrics["sim/iou/final_iou"]
    curves = json.loads((tmp_path / "box_regression_simulation.json").read_text())["curves"]
    assert len(curves["giou"]["iou"]) == 41
    assert (tmp_path / "images" / "box_regression_simulation.png").exists()
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(metrics)
    assert metrics["sim/giou/iou_at_10"] == curves["giou"]["iou"][10]


def test_the_paper_schedule_divides_the_rate_by_ten_at_iterations_161_and_181():
    from recipes.experiments.simulations import learning_rate

    rates = [learning_rate(i, 0.1, (161, 181), 0.1) for i in (1, 160, 161, 180, 181, 200)]
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert learning_rate(200, 0.1, (), 0.1) == 0.1  # the constant-rate variant


def test_centre_and_size_and_corners_are_different_procedures_from_the_same_start(tmp_path):
    anchors, targets = simulation_boxes(points=2, radius=3.0, seed=0)
    paper = regress("diou", anchors, targets, iterations=5, lr=0.1, parameterisation="xywh")
    corners = regress("diou", anchors, targets, iterations=5, lr=0.1, parameterisation="xyxy")
    assert paper["l1"][0] == corners["l1"][0]  # the same boxes before the first step
    assert paper["l1"][-1] != pytest.approx(corners["l1"][-1])  # a step on (x, y, w, h) is not one on the corners
    assert paper["l1"][-1] < paper["l1"][0]


def test_a_wrong_parameterisation_is_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"parameterisation must be one of xywh, xyxy \(got 'cxcy'\)"):
        box_regression(str(tmp_path), points=2, iterations=2, parameterisation="cxcy")
