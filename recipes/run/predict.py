"""predict.py: a trained checkpoint's predictions on a user's images or table, in the format users feed on.

- classification, distillation: ``predictions.csv`` (file, class, then one probability per class)
- detection: ``detections.json`` (COCO results: image_id, category_id = class, bbox [x, y, w, h] in the input
  image's pixels, score) and ``images.json`` (the COCO image list and categories the ids refer to), so that
  ``COCO("images.json").loadRes("detections.json")`` loads them
- segmentation: ``masks/<stem>.png``, one class id per pixel, the size of the input image
- siamese, simclr: ``embeddings.npy`` ``[N, D]``; vae: the latent means; ``files.txt`` gives the row order
- regression: ``predictions.csv`` (the input table with a ``prediction`` column), from a ``.csv`` of the features

The model is built from the trained config and loaded with the checkpoint's weights; the datamodule takes the
checkpoint's normalisation statistics (a checkpoint without them, or a table's datamodule, is set up: its training
split gives them) and its image size and channels from the config; no Trainer is started.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from losses.errors import ConfigError
from recipes.data.layout import read_image, resize_image
from recipes.data.mask_folder import IMAGE_SUFFIXES
from recipes.run.build import instantiate
from recipes.run.checks import check_config
from recipes.run.evaluate import trained_config

INPUTS = "input=IMAGE (.png, .jpg, ...), input=FOLDER of images, or input=TABLE.csv (regression: one column per feature)"
EMBEDDING_TASKS = ("SiameseTask", "SimCLRTask", "VAETask")


def input_files(value: str) -> list[Path]:
    """The images (or the one table) that ``input`` names."""
    path = Path(value).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"input: {path} holds no images; give {INPUTS}")
        return files
    if not path.is_file():
        raise ConfigError(f"input: no such file or folder {path}; give {INPUTS}")
    return [path]


def rebuild(cfg: DictConfig):
    """The task of ``cfg`` (a trained config) with the checkpoint's weights, in eval mode, and its datamodule with the
    checkpoint's normalisation statistics (set up where the checkpoint has none)."""
    losses = check_config(cfg)
    datamodule = instantiate(cfg.data, "data")
    task = instantiate(cfg.task, "task", model=instantiate(cfg.model, "model"), losses=losses, _recursive_=True)
    checkpoint = torch.load(cfg.ckpt_path, map_location="cpu", weights_only=True)
    task.load_state_dict(checkpoint["state_dict"])
    stats = checkpoint.get(type(datamodule).__qualname__) or {}
    if "mean" in stats:
        datamodule.load_state_dict(stats)
    else:
        datamodule.setup("predict")
    return task.eval(), datamodule


def predict(cfg: DictConfig) -> Path:
    """Write the predictions of ``cfg.ckpt_path`` on ``cfg.input``; returns the folder they are in."""
    if OmegaConf.is_missing(cfg, "input") or cfg.get("input") is None:
        raise ConfigError(f"input: not set; give {INPUTS}")
    files = input_files(str(cfg.input))
    trained = trained_config(cfg)
    output = Path(str(cfg.output or cfg.paths.output_dir))
    output.mkdir(parents=True, exist_ok=True)
    task, datamodule = rebuild(trained)
    kind = type(task).__name__
    with torch.no_grad():
        if kind == "RegressionTask":
            write_regression(task, datamodule, files[0], output)
            return output
        if files[0].suffix.lower() == ".csv":
            raise ConfigError(f"input: {files[0]} is a table, but task {kind} predicts on images; give {INPUTS}")
        images, sizes = read_inputs(files, datamodule)
        if kind == "DetectionTask":
            write_detections(task, datamodule, images, sizes, files, output)
        elif kind == "SegmentationTask":
            write_masks(task, datamodule, images, sizes, files, output)
        elif kind in EMBEDDING_TASKS:
            write_embeddings(task, datamodule, images, files, output)
        else:
            write_probabilities(task, datamodule, images, files, output)
    return output


def read_inputs(files: list[Path], datamodule) -> tuple[Tensor, list[tuple[int, int]]]:
    """The images as the training split holds them (channels, size; uint8), and each one's original (H, W)."""
    channels, side = datamodule.channels, datamodule.image_size
    images, sizes = [], []
    for path in files:
        pixels = read_image("input", path, channels, INPUTS)
        sizes.append(tuple(pixels.shape[-2:]))
        images.append(resize_image(pixels, side))
    return torch.stack(images), sizes


def batches(datamodule, images: Tensor):
    """Normalised batches of ``eval_batch_size`` images."""
    for start in range(0, len(images), datamodule.eval_batch_size):
        yield datamodule.normalize(images[start : start + datamodule.eval_batch_size])


def write_probabilities(task, datamodule, images: Tensor, files: list[Path], output: Path) -> None:
    probs = torch.cat([task(x).float().softmax(-1) for x in batches(datamodule, images)])
    with open(output / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "class", *(f"prob_{c}" for c in range(probs.shape[1]))])
        for path, row in zip(files, probs.tolist()):
            writer.writerow([path.name, int(np.argmax(row)), *(f"{p:.6g}" for p in row)])


def write_detections(task, datamodule, images: Tensor, sizes, files: list[Path], output: Path) -> None:
    found = [d for x in batches(datamodule, images) for d in task.detect(task(x))]
    side = images.shape[-1]
    results, infos = [], []
    for image_id, (path, (height, width), dets) in enumerate(zip(files, sizes, found), start=1):
        infos.append({"id": image_id, "file_name": path.name, "width": width, "height": height})
        scale = torch.tensor([width / side, height / side] * 2)
        for box, label, score in zip((dets["boxes"].cpu() * scale).tolist(), dets["labels"].tolist(), dets["scores"].tolist()):
            x1, y1, x2, y2 = box
            results.append(
                {"image_id": image_id, "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
            )
    names = getattr(datamodule, "classes", None) or [str(c) for c in range(task.num_classes)]
    categories = [{"id": c, "name": str(name)} for c, name in enumerate(names)]
    (output / "detections.json").write_text(json.dumps(results))
    (output / "images.json").write_text(json.dumps({"images": infos, "categories": categories, "annotations": []}))


def write_masks(task, datamodule, images: Tensor, sizes, files: list[Path], output: Path) -> None:
    from torchvision.io import write_png

    (output / "masks").mkdir(exist_ok=True)
    predicted = torch.cat([task(x).argmax(1) for x in batches(datamodule, images)])
    for path, (height, width), mask in zip(files, sizes, predicted):
        full = F.interpolate(mask[None, None].float(), size=(height, width), mode="nearest-exact")[0]
        write_png(full.to(torch.uint8), str(output / "masks" / f"{path.stem}.png"))


def write_embeddings(task, datamodule, images: Tensor, files: list[Path], output: Path) -> None:
    if type(task).__name__ == "VAETask":  # the latent means, from pixels in [0, 1] as the VAE sees them
        rows = [task.model.encode(images[i : i + 256].float() / 255)[0] for i in range(0, len(images), 256)]
    else:
        rows = [task(x) for x in batches(datamodule, images)]
    np.save(output / "embeddings.npy", torch.cat(rows).float().cpu().numpy())
    (output / "files.txt").write_text("".join(f"{p.name}\n" for p in files))


def write_regression(task, datamodule, table: Path, output: Path) -> None:
    """A numeric table of the training features (a header row, one column per feature), with a prediction each."""
    if table.suffix.lower() != ".csv":
        raise ConfigError(f"input: {table} is not a .csv table; regression predicts on one ({INPUTS})")
    with open(table, newline="") as f:
        rows = list(csv.reader(f))
    header, values = rows[0], rows[1:]
    features = len(datamodule.feature_mean)
    try:
        x = torch.tensor([[float(v) for v in row] for row in values], dtype=torch.float64)
    except ValueError as err:
        raise ConfigError(f"input: {table} must hold numbers under its header row ({err})") from None
    if x.ndim != 2 or x.shape[1] != features:
        raise ConfigError(
            f"input: {table} must have {features} feature columns, as data '{datamodule.name}' has "
            f"(got {x.shape[1] if x.ndim == 2 else 0})"
        )
    scaled = ((x - datamodule.feature_mean) / datamodule.feature_std).float()
    point = task.head.point(task(scaled)).double() * datamodule.target_std + datamodule.target_mean
    with open(output / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*header, "prediction"])
        for row, value in zip(values, point.tolist()):
            writer.writerow([*row, f"{value:.6g}"])
