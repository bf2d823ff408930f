"""A user's own folders: ImageFolder class folders of real digits (PNG or JPEG), and, from the digit canvases, VOC
(JPEG + XML), COCO (PNG + json) and mask folders (image + mask PNG).

The canvases' boxes and masks are exact, so what a datamodule reads back can be checked against what was written.
Digits 0, 1 and 2 only: a mask class is digit + 1 (0 is background), a VOC class is the digit's name.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import torch
from torchvision.io import write_jpeg, write_png

from recipes.data.canvas import CanvasSpec, generate
from recipes.data.sources import load_mnist5k

NAMES = ("zero", "one", "two")  # VOC class names of digits 0, 1, 2: sorted, they are one, two, zero
CLASS_NAMES = ["zero", "one", "two", "three"]  # ImageFolder class folders of digits 0-3


def first_digits(count: int = 24, data_dir: Path | None = None) -> dict[int, torch.Tensor]:
    """The first ``count`` real mnist5k digits of each class 0-3, uint8 ``[count, 1, 28, 28]``."""
    images, labels = load_mnist5k(data_dir)
    return {c: images[labels == c][:count] for c in range(4)}


def write_image_folder(
    root: Path, digits: dict[int, torch.Tensor], per_class: int = 12, splits=("train",), colour: bool = False, fmt: str = "png"
) -> Path:
    """``root/<split>/<class>/<i>.<fmt>``: grey digits, or tinted RGB ones (red channel = the digit)."""
    for split in splits:
        offset = 0 if split == "train" else per_class
        for c, name in enumerate(CLASS_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, image in enumerate(digits[c][offset : offset + per_class]):
                pixels = torch.cat([image, image // 2, image // 4]) if colour else image
                path = str(folder / f"{i}.{fmt}")
                write_png(pixels, path) if fmt == "png" else write_jpeg(pixels, path, quality=95)
    return root


def canvases(data_dir: Path, count: int, seed: int, size: int = 48, max_objects: int = 3) -> dict[str, torch.Tensor]:
    """``count`` canvases of digits 0-2 (``size`` squared, unscaled digits): images, boxes, labels, masks."""
    images, labels = load_mnist5k(data_dir)
    keep = torch.cat([torch.nonzero(labels == d).flatten()[:100] for d in range(3)])
    spec = CanvasSpec(size=size, max_objects=max_objects, min_scale=1.0, max_scale=1.0, scale_levels=1)
    return generate(images[keep], labels[keep], keep, count, spec, seed)


def write_mask_folder(root: Path, data_dir: Path, counts: dict[str, int], width: int = 48, height: int = 40) -> dict:
    """``root/<split>/images/<i>.png`` (RGB, ``width x height``) and ``masks/<i>.png`` with the top row void (255)."""
    written = {}
    for seed, (split, count) in enumerate(counts.items()):
        data = canvases(data_dir, count, seed)
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir()
        images = data["images"][:, :, :height, :width].expand(-1, 3, -1, -1).contiguous()
        masks = data["masks"][:, :height, :width].clone()
        masks[:, 0] = 255
        for i, (image, mask) in enumerate(zip(images, masks)):
            write_png(image, str(root / split / "images" / f"{i:03d}.png"))
            write_png(mask[None], str(root / split / "masks" / f"{i:03d}.png"))
        written[split] = (images, masks)
    return written


def voc_xml(file_name: str, width: int, height: int, objects: list[tuple[str, list[int], int]]) -> str:
    """A Pascal VOC annotation: ``objects`` are (name, [xmin, ymin, xmax, ymax] 1-based inclusive, difficult)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = file_name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    for name, box, difficult in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "difficult").text = str(difficult)
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bndbox, tag).text = str(value)
    return ET.tostring(root, encoding="unicode")


def write_voc_folder(root: Path, data_dir: Path, counts: dict[str, int], difficult_every: int = 0) -> dict:
    """VOC's ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg`` (RGB) and ``ImageSets/Main/<split>.txt``.

    Canvas boxes ``[x1, x2)`` become VOC's ``xmin = x1 + 1, xmax = x2``; every ``difficult_every``-th object
    (counted over the folder, when > 0) is marked difficult. Returns per split the ids, images, boxes, labels.
    """
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    written, count_objects = {}, 0
    for seed, (split, count) in enumerate(counts.items()):
        data = canvases(data_dir, count, 10 + seed)
        ids = [f"{split}_{i:03d}" for i in range(count)]
        images = data["images"].expand(-1, 3, -1, -1).contiguous()
        flags = torch.zeros_like(data["labels"], dtype=torch.bool)
        for i, image_id in enumerate(ids):
            write_jpeg(images[i], str(root / "JPEGImages" / f"{image_id}.jpg"), quality=95)
            objects = []
            for k, (box, label) in enumerate(zip(data["boxes"][i].tolist(), data["labels"][i].tolist())):
                if label < 0:
                    continue
                count_objects += 1
                flags[i, k] = difficult_every > 0 and count_objects % difficult_every == 0
                x1, y1, x2, y2 = (int(v) for v in box)
                objects.append((NAMES[label], [x1 + 1, y1 + 1, x2, y2], int(flags[i, k])))
            size = images.shape[-1]
            (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(f"{image_id}.jpg", size, size, objects))
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        written[split] = {"ids": ids, "images": images, "boxes": data["boxes"], "labels": data["labels"], "difficult": flags}
    return written


def write_coco_folder(root: Path, data_dir: Path, counts: dict[str, int], crowd_every: int = 0) -> dict:
    """``annotations/<split>.json`` and ``images/<split>_<i>.png`` (grey): category ids 1-3 are digits 0-2, canvas
    boxes ``[x1, x2)`` become ``bbox [x1, y1, x2 - x1, y2 - y1]``; every ``crowd_every``-th object is a crowd."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    categories = [{"id": d + 1, "name": name} for d, name in enumerate(NAMES)]
    written, count_objects = {}, 0
    for seed, (split, count) in enumerate(counts.items()):
        data = canvases(data_dir, count, 20 + seed)
        images, annotations = [], []
        for i in range(count):
            file_name = f"{split}_{i:03d}.png"
            write_png(data["images"][i], str(root / "images" / file_name))
            images.append(
                {"id": i + 1, "file_name": file_name, "width": data["images"].shape[-1], "height": data["images"].shape[-2]}
            )
            for box, label in zip(data["boxes"][i].tolist(), data["labels"][i].tolist()):
                if label < 0:
                    continue
                count_objects += 1
                x1, y1, x2, y2 = (int(v) for v in box)
                crowd = int(crowd_every > 0 and count_objects % crowd_every == 0)
                annotations.append(
                    {"id": count_objects, "image_id": i + 1, "category_id": label + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                     "area": (x2 - x1) * (y2 - y1), "iscrowd": crowd}
                )  # fmt: skip
        coco = {"images": images, "annotations": annotations, "categories": categories}
        (root / "annotations" / f"{split}.json").write_text(json.dumps(coco))
        written[split] = coco
    return written
