"""Your own detection data: a folder with COCO-format annotations (``data=coco_folder data.root=FOLDER``).

Layout (paths relative to ``root``, each configurable)::

    annotations/train.json   annotations/val.json   [annotations/test.json]   images/<file_name>

Categories become classes 0..K-1 in the order of their ids; ``data.num_classes`` must be K. Images
are read in grey (``channels: 1``) or RGB (``channels: 3``) from any mode and size and resized to ``image_size``
squared, boxes with them. Crowd annotations (``iscrowd``) are no training target and are ignored by mAP, as COCO's
evaluation ignores them (their label is ``ignored_label(class)``). A box that leaves its image, or has no area, is an error
that names the file, the annotation and the image size.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from losses.errors import ConfigError, check, check_integer
from recipes.data.base import InMemoryDataModule, Splits
from recipes.data.layout import ignored_label, resize_image


class COCOFolderDataModule(InMemoryDataModule):
    """``(images, boxes, labels)`` batches from COCO json files and their images, held in memory as uint8.

    Boxes are xyxy in pixels of the resized image, padded with label -1 to the most boxes of any image.
    """

    fields = ("images", "boxes", "labels")

    def __init__(
        self,
        name: str = "coco_folder",
        root: str | None = None,
        train: str = "annotations/train.json",
        val: str = "annotations/val.json",
        test: str | None = None,
        images: str = "images",
        image_size: int = 96,
        num_classes: int = 10,
        channels: int = 1,
        batch_size: int = 32,
        eval_batch_size: int = 100,
        num_workers: int = 0,
        on_device: str | bool = "auto",
    ) -> None:
        super().__init__(name, batch_size, eval_batch_size, num_workers, on_device)
        check(self.owner, bool(root), "root must be a folder with annotations/ and images/; set data.root=FOLDER", root)
        check(self.owner, channels in (1, 3), "channels must be 1 (grey) or 3 (RGB)", channels)
        self.image_size = check_integer(self.owner, "image_size", image_size, low=16)
        check_integer(self.owner, "num_classes", num_classes, low=1)
        self.num_classes, self.channels = num_classes, channels
        self.root, self.image_dir = Path(root), images
        self.files = {"train": train, "val": val, "test": test or val}

    def load(self) -> Splits:
        return {split: self.read_split(self.root / name) for split, name in self.files.items()}

    def read_split(self, path: Path) -> tuple[Tensor, Tensor, Tensor]:
        """Images, padded xyxy boxes (pixels of the resized image) and labels (-1 padding) of one json file."""
        if not path.exists():
            raise ConfigError(f"{self.owner}: {path} not found; set data.train / data.val / data.test to its json files")
        coco = json.loads(path.read_text())
        categories = sorted(c["id"] for c in coco.get("categories", []))
        if len(categories) != self.num_classes:
            raise ConfigError(
                f"{self.owner}: {path.name} has {len(categories)} categories but data.num_classes is "
                f"{self.num_classes}; set data.num_classes={len(categories)}"
            )
        index = {cat: i for i, cat in enumerate(categories)}
        per_image: dict[int, list[dict]] = {image["id"]: [] for image in coco["images"]}
        for ann in coco.get("annotations", []):
            per_image[ann["image_id"]].append(ann)
        most = max([len(a) for a in per_image.values()] + [1])
        n, size = len(coco["images"]), self.image_size
        images = torch.zeros(n, self.channels, size, size, dtype=torch.uint8)
        boxes = torch.zeros(n, most, 4)
        labels = torch.full((n, most), -1, dtype=torch.long)
        for i, info in enumerate(coco["images"]):
            pixels = self.read_image(info["file_name"])
            height, width = pixels.shape[-2:]
            images[i] = resize_image(pixels, self.image_size)
            for j, ann in enumerate(per_image[info["id"]]):
                x, y, w, h = (float(v) for v in ann["bbox"])
                if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
                    raise ConfigError(
                        f"{self.owner}: annotation {ann.get('id')} in {path.name} has bbox [x, y, w, h] = "
                        f"{ann['bbox']}, which is empty or outside its image {info['file_name']} ({width}x{height}); "
                        "fix or clip the box"
                    )
                if ann["category_id"] not in index:
                    raise ConfigError(
                        f"{self.owner}: annotation {ann.get('id')} in {path.name} has category_id "
                        f"{ann['category_id']}, not among the categories {categories}"
                    )
                sx, sy = size / width, size / height
                boxes[i, j] = torch.tensor([x * sx, y * sy, (x + w) * sx, (y + h) * sy])
                labels[i, j] = ignored_label(index[ann["category_id"]]) if ann.get("iscrowd", 0) else index[ann["category_id"]]
        return images, boxes, labels

    def read_image(self, file_name: str) -> Tensor:
        from torchvision.io import ImageReadMode, decode_image

        path = self.root / self.image_dir / file_name
        if not path.exists():
            raise ConfigError(f"{self.owner}: image {path} is listed in the annotations but missing")
        mode = ImageReadMode.GRAY if self.channels == 1 else ImageReadMode.RGB
        return decode_image(str(path), mode=mode)
