"""Every task draws its test images into the run folder (``images/``) and onto W&B: classification its reliability
diagram, confusion matrix and most confident mistakes; detection and segmentation W&B's interactive boxes and masks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image

from recipes.metrics import ReliabilityBins
from train import train

TINY_MODEL = ("model.widths=[8,16]",)
SMOKE_TEST_EXAMPLES = 2 * 64  # debug=smoke: limit_test_batches=2 of eval_batch_size=64


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_classification_draws_reliability_confusion_and_mistakes_whose_numbers_match_the_metrics(smoke_config, tmp_path):
    metrics = train(smoke_config(*TINY_MODEL))
    images = tmp_path / "images"
    for name in ("test_reliability", "test_confusion_matrix", "test_confident_mistakes"):
        with Image.open(images / f"{name}.png") as png:
            assert min(png.size) > 100 and len(set(png.convert("L").getdata())) > 10, name  # drawn, not blank
    rows = read_csv(images / "test_confusion_matrix.csv")
    confusion = torch.tensor([[int(v) for k, v in row.items() if k != "true"] for row in rows])
    assert confusion.shape == (10, 10)
    assert int(confusion.sum()) == SMOKE_TEST_EXAMPLES  # every test example seen, once
    assert float(confusion.trace()) / SMOKE_TEST_EXAMPLES == pytest.approx(metrics["test/acc"], abs=1e-6)
    bins = read_csv(images / "test_reliability.csv")
    assert len(bins) == 15 and sum(int(b["count"]) for b in bins) == SMOKE_TEST_EXAMPLES
    ece = sum(int(b["count"]) / SMOKE_TEST_EXAMPLES * abs(float(b["accuracy"]) - float(b["confidence"])) for b in bins)
    assert ece == pytest.approx(metrics["test/ece"], rel=1e-4)  # the diagram's bins are the ECE's bins
    assert sum(int(b["count"]) * float(b["accuracy"]) for b in bins) == pytest.approx(float(confusion.trace()), abs=1e-6)


def test_reliability_bins_give_torchmetrics_ece_and_put_confidence_one_in_the_last_bin():
    from torchmetrics.classification import MulticlassCalibrationError

    generator = torch.Generator().manual_seed(0)
    probs = (torch.randn(500, 5, generator=generator) * 3).softmax(1)
    probs[0] = torch.tensor([1.0, 0, 0, 0, 0])  # confidence exactly 1: the edge of the last bin
    target = torch.randint(0, 5, (500,), generator=generator)
    bins = ReliabilityBins(n_bins=10)
    bins.update(probs[:250], target[:250])
    bins.update(probs[250:], target[250:])
    count, confidence, accuracy = bins.compute()
    assert int(count.sum()) == 500 and int((count > 0).sum()) >= 6  # the spread fills most bins
    reference = MulticlassCalibrationError(5, n_bins=10, norm="l1")(probs, target)
    ece = (count / 500 * (accuracy - confidence).abs()).sum()
    assert float(ece) == pytest.approx(float(reference), abs=1e-6)
    top = probs.max(1).values
    in_last = top >= 0.9
    assert int(count[-1]) == int(in_last.sum())
    assert float(confidence[-1]) == pytest.approx(float(top[in_last].mean()), rel=1e-6)


def offline_run(run_dir: Path) -> tuple[Path, list[dict[str, object]]]:
    """The offline W&B run's ``files/`` folder and its history rows, once the run is closed."""
    from recipes.results.wandb_offline import history, run_files, wait_until_closed

    (path,) = run_files(run_dir / "wandb")
    assert wait_until_closed(path), "the W&B run never wrote its exit record"
    return path.parent / "files", history(path)


def wandb_smoke(smoke_config, *overrides: str) -> tuple[dict[str, float], object]:
    """A smoke run logging to W&B offline; its metrics and the first test batch the task drew its images from."""
    from recipes.run.build import instantiate
    from recipes.run.loggers import finish_wandb

    cfg = smoke_config(*overrides, "logger=wandb", "logger.wandb.mode=offline")
    try:
        metrics = train(cfg)
    finally:
        finish_wandb()  # flushes the run file, as train.py's main does
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    return metrics, next(iter(datamodule.test_dataloader()))


def images_entry(rows: list[dict[str, object]], key: str) -> dict[str, object]:
    """The fields W&B recorded for one ``images/separated`` history entry (nested keys ``key/field``)."""
    (row,) = [r for r in rows if f"{key}/_type" in r]
    return {k.removeprefix(f"{key}/"): v for k, v in row.items() if k.startswith(f"{key}/")}


def test_detection_sends_w_and_b_interactive_boxes_beside_the_png(smoke_config, tmp_path):
    from tests.helpers.sizes import DETECTION_TINY as TINY

    _, (images, boxes, labels, *_) = wandb_smoke(
        smoke_config, "task=detection", *TINY, "task.score_threshold=0.0", "task.max_detections=5"
    )
    assert (tmp_path / "images" / "test_detections.png").exists()
    files, rows = offline_run(tmp_path)
    entry = images_entry(rows, "test/detections_interactive")
    assert entry["_type"] == "images/separated" and entry["count"] == 8  # task.image_count
    for i, overlay in enumerate(entry["all_boxes"]):
        truth = json.loads((files / overlay["ground_truth"]["path"]).read_text())
        kept = labels[i] >= 0
        assert [b["class_id"] for b in truth["box_data"]] == labels[i][kept].tolist()
        positions = [[b["position"][k] for k in ("minX", "minY", "maxX", "maxY")] for b in truth["box_data"]]
        assert torch.allclose(torch.tensor(positions), boxes[i][kept].float())  # the true boxes, in pixels
        predicted = json.loads((files / overlay["predictions"]["path"]).read_text())["box_data"]
        assert 1 <= len(predicted) <= 5 and all(0 <= b["scores"]["score"] <= 1 for b in predicted)
        assert set(truth["class_labels"]) == {str(c) for c in range(10)}


def test_segmentation_sends_w_and_b_interactive_masks_beside_the_png(smoke_config, tmp_path):
    from tests.helpers.sizes import SEGMENTATION_TINY as TINY

    _, batch = wandb_smoke(smoke_config, "task=segmentation", *TINY)
    masks = batch[3]
    assert (tmp_path / "images" / "test_masks.png").exists()
    files, rows = offline_run(tmp_path)
    entry = images_entry(rows, "test/masks_interactive")
    assert entry["_type"] == "images/separated" and entry["count"] == 8  # task.image_count
    for i, overlay in enumerate(entry["all_masks"]):
        with Image.open(files / overlay["ground_truth"]["path"]) as png:
            assert torch.equal(torch.from_numpy(numpy.asarray(png).copy()).long(), masks[i].long())  # the true mask
        with Image.open(files / overlay["predictions"]["path"]) as png:
            predicted = numpy.asarray(png)
        assert predicted.shape == tuple(masks[i].shape) and predicted.max() < 11  # a class per pixel
