"""Your own detection data: a folder with COCO-format annotations (``data=coco_folder data.root=FOLDER``).

Layout (paths relative to ``root``, each configurable)::

    annotations/train.json   annotations/val.json   [annotations/test.json]   images/<file_name>

Categories become classes 0..K-1 in the order of their ids; ``data.num_classes`` must be K. Images
are read in grey (``channels: 1``) or RGB (``channels: 3``) from any mode and size and resized to ``image_size``
squared, boxes with them. Crowd annotations (``iscrowd``) are no training target and are ignored by mAP, as COCO's
evaluation ignores them (their label is ``ignored_label(class)``). A file that is not a COCO file (empty, not JSON,
without the lists ``images``, ``annotations``, ``categories``), an annotation whose image, category or box
[x, y, w, h] is missing, unknown, not four finite numbers, empty or outside its image, and an image that does not
decode are each one error that names the file, the annotation or image, and what it must hold. The json files
are read and checked up front; each image is decoded by one reader (recipes/data/boxes.py, as ``voc_folder``'s),
once into memory or, with ``storage=stream``, per sample in the DataLoader workers (recipes/data/streaming.py),
where its boxes are checked against it. The json is read with ``json`` and checked here rather than through
pycocotools' ``COCO`` index (which evaluation and ``predict.py``'s results use): ``COCO()`` prints to stdout and
stops at a malformed file with a bare KeyError, where this reader names the file, the entry and the fix.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

from losses.errors import ConfigError, check, check_integer
from recipes.data.boxes import BoxedFolderDataModule, BoxedImages
from recipes.data.layout import ignored_label

COCO_FILE = (
    'a COCO file holds {"images": [{"id": 1, "file_name": "a.jpg"}, ...], "annotations": [{"id": 1, '
    '"image_id": 1, "category_id": 1, "bbox": [x, y, width, height]}, ...], "categories": [{"id": 1, "name": "cat"}, ...]}'
)


def read_coco_image(owner: str, path: Path, listed_in: Path, channels: int) -> Tensor:
    """uint8 ``[channels, H, W]`` of an image a COCO file lists; a missing or undecodable one names that file."""
    from torchvision.io import ImageReadMode, decode_image

    if not path.is_file():
        raise ConfigError(f"{owner}: image {path} is listed in {listed_in} but missing")
    try:
        return decode_image(str(path), mode=ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB)
    except RuntimeError as err:  # torchvision's decoders report a damaged or unknown file this way
        raise ConfigError(
            f"{owner}: image {path} (listed in {listed_in}) cannot be decoded ({str(err).splitlines()[0]}); "
            "replace it with a readable JPEG, PNG, GIF or WEBP file, or remove it from the annotations"
        ) from None


class COCOImages(BoxedImages):
    """Item ``i``: the ``i``-th image of a COCO file with its boxes (``BoxedImages``), each inside the decoded image;
    a crowd annotation (``iscrowd``) of class c has ``ignored_label(c)``."""

    def __init__(
        self, per_image: list[tuple[str, list[dict]]], index: dict[int, int], listed_in: Path, folder: Path, owner: str,
        channels: int, size: int,
    ) -> None:  # fmt: skip
        self.listed_in, self.folder, self.owner, self.channels = listed_in, folder, owner, channels
        # what decoding checks: each image's file and its boxes as given (the rest of the json is not kept)
        self.boxes_given = [(file_name, [(a.get("id"), a["bbox"]) for a in anns]) for file_name, anns in per_image]
        targets = []
        for _, anns in per_image:
            corners = [[x, y, x + w, y + h] for x, y, w, h in ([float(v) for v in a["bbox"]] for a in anns)]
            names = [ignored_label(index[a["category_id"]]) if a.get("iscrowd", 0) else index[a["category_id"]] for a in anns]
            boxes = torch.tensor(corners, dtype=torch.float64).reshape(-1, 4)  # scaled in float64, as read before
            targets.append((boxes, torch.tensor(names, dtype=torch.long)))
        super().__init__(targets, size)

    def pixels(self, i: int) -> Tensor:
        file_name, given = self.boxes_given[i]
        pixels = read_coco_image(self.owner, self.folder / file_name, self.listed_in, self.channels)
        height, width = pixels.shape[-2:]
        for ann_id, bbox in given:
            x, y, w, h = (float(v) for v in bbox)
            if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
                raise ConfigError(
                    f"{self.owner}: annotation {ann_id} in {self.listed_in} has bbox [x, y, w, h] = "
                    f"{bbox}, which is empty or outside its image {file_name} ({width}x{height}); "
                    "fix or clip the box"
                )
        return pixels


class COCOFolderDataModule(BoxedFolderDataModule):
    """``(images, boxes, labels)`` batches from COCO json files and their images, as uint8 (held or streamed).

    Boxes are xyxy in pixels of the resized image, padded with label -1 to the most boxes of any image.
    """

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
        storage: str = "auto",
        memory_limit_gb: float | None = None,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        hflip: bool = False,
    ) -> None:
        super().__init__(name, batch_size, eval_batch_size, num_workers, on_device)
        check(self.owner, bool(root), "root must be a folder with annotations/ and images/; set data.root=FOLDER", root)
        check(self.owner, Path(root).is_dir(), "root must be a folder with annotations/ and images/", root)
        self.folder_settings(root, image_size, channels, hflip=hflip)
        self.num_classes = check_integer(self.owner, "num_classes", num_classes, low=1)
        self.image_dir = images
        self.files = {"train": train, "val": val, "test": test or val}
        for split, name in self.files.items():
            need = f"{split} must name a json file under {self.root}; set data.{split}=annotations/FILE.json"
            check(self.owner, (self.root / name).is_file(), need, name)
        read = {name: self.read_split(self.root / name) for name in dict.fromkeys(self.files.values())}
        self.images = {split: read[name] for split, name in self.files.items()}
        self.storage_settings(storage, memory_limit_gb, pin_memory, persistent_workers)

    def boxed_splits(self) -> dict[str, COCOImages]:
        return self.images

    def read_split(self, path: Path) -> COCOImages:
        """One json file read and checked: its images with their annotations (no image decoded)."""
        coco = self.read_json(path)
        categories = sorted(c["id"] for c in coco["categories"])
        if len(categories) != self.num_classes:
            raise ConfigError(
                f"{self.owner}: {path} has {len(categories)} categories but data.num_classes is "
                f"{self.num_classes}; set data.num_classes={len(categories)}"
            )
        index = {cat: i for i, cat in enumerate(categories)}
        per_image: dict[int, list[dict]] = {image["id"]: [] for image in coco["images"]}
        for ann in coco["annotations"]:
            self.check_annotation(path, ann, per_image, index)
            per_image[ann["image_id"]].append(ann)
        listed = [(info["file_name"], per_image[info["id"]]) for info in coco["images"]]
        return COCOImages(listed, index, path, self.root / self.image_dir, self.owner, self.channels, self.image_size)

    def read_json(self, path: Path) -> dict:
        """The parsed file, refused unless it holds what a COCO file must: non-empty images and categories with
        unique ids, images with a file_name, and a list of annotations."""
        text = path.read_bytes().decode("utf-8", errors="replace")
        if not text.strip():
            raise ConfigError(f"{self.owner}: {path} is empty; {COCO_FILE}")
        try:
            coco = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{self.owner}: {path} is not valid JSON ({err}); {COCO_FILE}") from None
        lists = ("images", "annotations", "categories")
        missing = [key for key in lists if not isinstance(coco, dict) or not isinstance(coco.get(key), list)]
        if missing:
            raise ConfigError(f"{self.owner}: {path} has no list {', '.join(map(repr, missing))}; {COCO_FILE}")
        for key, fields in (("images", {"id": int, "file_name": str}), ("categories", {"id": int})):
            entries = coco[key]
            if not entries:
                raise ConfigError(f"{self.owner}: {path} lists no {key}; {COCO_FILE}")
            for entry in entries:
                ok = isinstance(entry, dict) and all(isinstance(entry.get(f), t) for f, t in fields.items())
                if not ok:
                    need = " and ".join(f"{f} ({t.__name__})" for f, t in fields.items())
                    raise ConfigError(f"{self.owner}: an entry of {key} in {path} is {entry!r}; each needs {need}")
            ids = [entry["id"] for entry in entries]
            if len(set(ids)) < len(ids):
                twice = sorted({i for i in ids if ids.count(i) > 1})
                raise ConfigError(f"{self.owner}: {path} lists {key} ids {twice} more than once; ids must be unique")
        return coco

    def check_annotation(self, path: Path, ann: object, per_image: dict[int, list], index: dict[int, int]) -> None:
        """One annotation names a listed image, a listed category and a box of four finite numbers."""
        where = f"{self.owner}: annotation {ann.get('id') if isinstance(ann, dict) else ann!r} in {path}"
        if not isinstance(ann, dict):
            raise ConfigError(f"{where} is not an object; each needs image_id, category_id and bbox [x, y, w, h]")
        if ann.get("image_id") not in per_image:
            raise ConfigError(
                f"{where} has image_id {ann.get('image_id')!r}, which no entry of images has "
                f"(ids {sorted(per_image)[:5]}{' ...' if len(per_image) > 5 else ''})"
            )
        bbox = ann.get("bbox")
        numbers = isinstance(bbox, list) and len(bbox) == 4
        if not numbers or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
            raise ConfigError(f"{where} has bbox {bbox!r}; a COCO bbox is [x, y, width, height], four finite numbers")
        if ann.get("category_id") not in index:
            raise ConfigError(f"{where} has category_id {ann.get('category_id')!r}, not among the categories {sorted(index)}")
