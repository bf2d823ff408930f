"""predict.py on a smoke run's checkpoint: the outputs parse back in the formats users feed on, with valid values."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torchvision.io import decode_png, read_file, write_jpeg, write_png

from recipes.data.sources import load_mnist5k
from tests.helpers.configs import ROOT
from tests.helpers.folders import canvases
from tests.helpers.sizes import DETECTION_TINY, SEGMENTATION_TINY, TASK_TINY
from train import train


def trained_run(smoke_config, tmp_path, *overrides: str):
    """A smoke run in ``tmp_path/run`` with its config saved where train.py saves it; returns its best checkpoint."""
    cfg = smoke_config(*overrides)
    train(cfg)
    run = tmp_path
    (run / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)), run / ".hydra" / "config.yaml")
    return run / "checkpoints" / "best.ckpt"


def digit_folder(tmp_path, data_dir, count: int):
    """``tmp_path/inputs`` holding the first ``count`` mnist5k digits as ``0.png``, ``1.png``, ..."""
    images, _ = load_mnist5k(data_dir)
    folder = tmp_path / "inputs"
    folder.mkdir()
    for i in range(count):
        write_png(images[i], str(folder / f"{i}.png"))
    return folder


def probability_rows(out) -> list[dict[str, str]]:
    """The rows of ``out/predictions.csv``, each checked: probabilities that sum to 1, and the class their argmax."""
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        probs = np.array([float(row[f"prob_{c}"]) for c in range(10)])
        assert probs.sum() == pytest.approx(1.0, abs=1e-4) and (probs >= 0).all()
        assert int(row["class"]) == int(probs.argmax())
    return rows


def predict(ckpt, inputs, out, data_dir, *overrides: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "WANDB_MODE": "offline", "DATA_DIR": str(data_dir)}
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    command = [sys.executable, "predict.py", f"ckpt_path={ckpt}", f"input={inputs}", f"output={out}", *overrides]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_classification_writes_a_class_and_probabilities_that_sum_to_one_per_image(smoke_config, tmp_path, data_dir):
    ckpt = trained_run(smoke_config, tmp_path, *TASK_TINY["classification"])
    images, _ = load_mnist5k(data_dir)
    folder = tmp_path / "inputs"
    folder.mkdir()
    for i in range(4):
        write_png(images[i], str(folder / f"digit{i}.png"))
    big = torch.nn.functional.interpolate(images[4:5].float(), size=(40, 36)).to(torch.uint8)[0]
    write_jpeg(big.expand(3, -1, -1).contiguous(), str(folder / "rgb.jpg"))  # another size and mode
    predict(ckpt, folder, tmp_path / "out", data_dir)
    rows = probability_rows(tmp_path / "out")
    assert [r["file"] for r in rows] == ["digit0.png", "digit1.png", "digit2.png", "digit3.png", "rgb.jpg"]


def test_detection_writes_coco_results_that_pycocotools_loads(smoke_config, tmp_path, data_dir):
    from pycocotools.coco import COCO

    ckpt = trained_run(smoke_config, tmp_path, "task=detection", "task.score_threshold=0.0", *DETECTION_TINY)  # low scores
    data = canvases(data_dir, 3, seed=5, size=64)
    folder = tmp_path / "inputs"
    folder.mkdir()
    for i in range(2):
        write_png(data["images"][i], str(folder / f"{i}.png"))
    wide = torch.nn.functional.interpolate(data["images"][2:].float(), size=(64, 96)).to(torch.uint8)[0]
    write_png(wide, str(folder / "wide.png"))
    predict(ckpt, folder, tmp_path / "out", data_dir)
    coco = COCO(str(tmp_path / "out" / "images.json"))
    results = coco.loadRes(str(tmp_path / "out" / "detections.json"))
    assert sorted(coco.getImgIds()) == [1, 2, 3] and coco.imgs[3]["width"] == 96
    anns = results.loadAnns(results.getAnnIds())
    assert anns and all(0 <= a["category_id"] < 10 and 0 <= a["score"] <= 1 for a in anns)
    for a in anns:
        x, y, w, h = a["bbox"]
        image = coco.imgs[a["image_id"]]
        assert w >= 0 and h >= 0 and x >= -1e-3 and x + w <= image["width"] + 1e-3 and y + h <= image["height"] + 1e-3


def test_segmentation_writes_a_mask_png_of_each_images_size_with_valid_ids(smoke_config, tmp_path, data_dir):
    ckpt = trained_run(smoke_config, tmp_path, "task=segmentation", *SEGMENTATION_TINY)
    data = canvases(data_dir, 1, seed=6, size=64)
    image = tmp_path / "street.png"
    write_png(torch.nn.functional.interpolate(data["images"].float(), size=(50, 70)).to(torch.uint8)[0], str(image))
    predict(ckpt, image, tmp_path / "out", data_dir)
    mask = decode_png(read_file(str(tmp_path / "out" / "masks" / "street.png")))
    assert mask.shape == (1, 50, 70) and int(mask.max()) < 11


def test_siamese_writes_one_embedding_per_image(smoke_config, tmp_path, data_dir):
    ckpt = trained_run(smoke_config, tmp_path, "task=siamese", *TASK_TINY["siamese"])
    folder = digit_folder(tmp_path, data_dir, 3)
    predict(ckpt, folder, tmp_path / "out", data_dir)
    embeddings = np.load(tmp_path / "out" / "embeddings.npy")
    assert embeddings.shape == (3, 16) and np.isfinite(embeddings).all()
    assert (tmp_path / "out" / "files.txt").read_text().split() == ["0.png", "1.png", "2.png"]


def test_regression_adds_a_prediction_column_to_the_table(smoke_config, tmp_path, data_dir):
    from recipes.data.tabular import load_diabetes

    ckpt = trained_run(smoke_config, tmp_path, "task=regression", *TASK_TINY["regression"])
    x, _ = load_diabetes()
    table = tmp_path / "patients.csv"
    table.write_text(
        "".join(
            [",".join(f"f{i}" for i in range(10)) + "\n", *(",".join(f"{v:.6f}" for v in row) + "\n" for row in x[:5].tolist())]
        )
    )
    predict(ckpt, table, tmp_path / "out", data_dir)
    with open(tmp_path / "out" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and all(np.isfinite(float(r["prediction"])) for r in rows)
    assert 0 < np.mean([float(r["prediction"]) for r in rows]) < 400  # in the target's units (25..346), not scaled


@pytest.mark.parametrize("task,width", [("vae", 2), ("simclr", None)])
def test_vae_and_simclr_write_one_embedding_per_image(smoke_config, tmp_path, data_dir, task, width):
    """The VAE gives its latent means (``model.latent_dim`` wide), SimCLR its encoder's features."""
    ckpt = trained_run(smoke_config, tmp_path, f"task={task}", *TASK_TINY[task])
    folder = digit_folder(tmp_path, data_dir, 3)
    predict(ckpt, folder, tmp_path / "out", data_dir)
    embeddings = np.load(tmp_path / "out" / "embeddings.npy")
    assert embeddings.shape[0] == 3 and embeddings.ndim == 2 and np.isfinite(embeddings).all()
    assert width is None or embeddings.shape[1] == width
    assert len({row.tobytes() for row in embeddings}) == 3  # three digits, three different embeddings


def test_distillation_writes_the_students_classes_and_probabilities(smoke_config, tmp_path, data_dir):
    ckpt = trained_run(smoke_config, tmp_path, "task=distillation", *TASK_TINY["distillation"])
    predict(ckpt, digit_folder(tmp_path, data_dir, 2), tmp_path / "out", data_dir)
    assert [r["file"] for r in probability_rows(tmp_path / "out")] == ["0.png", "1.png"]
