"""Zheng et al. 2020's box-regression simulation: geometry of the cases and convergence of each loss."""

from __future__ import annotations

import json

import torch

from recipes.experiments.simulations import box_iou, box_regression, simulation_boxes


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
