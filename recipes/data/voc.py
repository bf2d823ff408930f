"""Your own detection data in Pascal VOC's layout (``data=voc_folder data.root=DIR``), next to ``coco_folder``.

Boxes come from the XML files (``xml.etree``): VOC's 1-based inclusive pixel corners become xyxy pixel edges
``(xmin - 1, ymin - 1, xmax, ymax)``, as detectron2 reads them. Classes are the sorted object names of every
XML file unless ``classes`` lists them (in label order). ``difficult`` objects are no training target and are
ignored by mAP, as VOC's evaluation ignores them (held as torchmetrics' ``iscrowd``). Images of any size and
mode are resized to ``image_size`` squared, boxes with them. A split without its ``ImageSets/Main`` file is
split off train (seeded); without ``train.txt`` every annotation is in train. ``storage=stream`` reads each image
in the DataLoader workers instead of once up front (recipes/data/streaming.py); the XML files are read up front.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.etree import ElementTree as ET

import torch
from torch import Tensor

from losses.errors import check
from recipes.data.base import SPLITS
from recipes.data.boxes import BoxedFolderDataModule, BoxedImages
from recipes.data.layout import ignored_label, read_image, refuse

LAYOUT = """\
    DIR/Annotations/<id>.xml        <annotation>: <filename>, <size> (width, height), one <object> per box:
                                    <name>, <difficult> (optional), <bndbox> xmin ymin xmax ymax (1-based, inclusive)
    DIR/JPEGImages/<filename>       the image (any size, JPEG or PNG)
    DIR/ImageSets/Main/train.txt    one <id> per line; val.txt and test.txt optional (split off train)"""
OWNER = "data 'voc_folder'"


@dataclass(frozen=True)
class VOCObject:
    name: str
    box: tuple[float, float, float, float]  # xyxy pixel edges of the original image
    difficult: bool


@dataclass(frozen=True)
class VOCAnnotation:
    path: Path
    file_name: str
    width: int
    height: int
    objects: tuple[VOCObject, ...]


def number(path: Path, node: ET.Element | None, tag: str) -> float:
    """The number in ``node/<tag>``; a missing or non-numeric one refuses the file."""
    text = None if node is None else node.findtext(tag)
    try:
        return float(text)
    except (TypeError, ValueError):
        raise refuse(OWNER, path, f"<{tag}> missing or not a number (got {text!r})", LAYOUT) from None


def parse(path: Path) -> VOCAnnotation:
    """One XML annotation, checked: a size, at least one object, each with a name and a box inside the image."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise refuse(OWNER, path, f"not valid XML ({err})", LAYOUT) from None
    size = root.find("size")
    if size is None:
        raise refuse(OWNER, path, "no <size>", LAYOUT)
    width, height = int(number(path, size, "width")), int(number(path, size, "height"))
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise refuse(OWNER, path, "an <object> without a <name>", LAYOUT)
        box = obj.find("bndbox")
        if box is None:
            raise refuse(OWNER, path, f"object {name!r} has no <bndbox>", LAYOUT)
        x1, y1, x2, y2 = (number(path, box, tag) for tag in ("xmin", "ymin", "xmax", "ymax"))
        if not (1 <= x1 <= x2 <= width and 1 <= y1 <= y2 <= height):
            corners = f"xmin, ymin, xmax, ymax = {x1:g}, {y1:g}, {x2:g}, {y2:g}"
            problem = f"object {name!r} has a box ({corners}) outside its {width}x{height} image or empty; fix or clip it"
            raise refuse(OWNER, path, problem, LAYOUT)
        difficult = (obj.findtext("difficult") or "0").strip() not in ("0", "")
        objects.append(VOCObject(name, (x1 - 1, y1 - 1, x2, y2), difficult))
    if not objects:
        raise refuse(OWNER, path, "no <object>", LAYOUT)
    file_name = (root.findtext("filename") or f"{path.stem}.jpg").strip()
    return VOCAnnotation(path, file_name, width, height, tuple(objects))


def split_ids(root: Path) -> dict[str, list[str]]:
    """The ids of each split that has its ``ImageSets/Main/<split>.txt`` (train: every annotation without one)."""
    annotations = root / "Annotations"
    if not annotations.is_dir():
        raise refuse(OWNER, annotations, "folder missing", LAYOUT)
    found = {}
    for split in SPLITS:
        listed = root / "ImageSets" / "Main" / f"{split}.txt"
        if listed.is_file():
            found[split] = [line.split()[0] for line in listed.read_text().splitlines() if line.strip()]
            if not found[split]:
                raise refuse(OWNER, listed, "lists no ids", LAYOUT)
    if "train" not in found:
        found["train"] = sorted(p.stem for p in annotations.glob("*.xml"))
    if not found["train"]:
        raise refuse(OWNER, annotations, "no <id>.xml files", LAYOUT)
    return found


def annotation(root: Path, image_id: str) -> VOCAnnotation:
    path = root / "Annotations" / f"{image_id}.xml"
    if not path.is_file():
        raise refuse(OWNER, path, "annotation missing (its id is listed in ImageSets/Main)", LAYOUT)
    return parse(path)


@lru_cache(maxsize=8)
def class_names(root: str) -> tuple[str, ...]:
    """The sorted object names of every annotation of a VOC folder."""
    if not root or not Path(root).is_dir():
        raise refuse(OWNER, root, "no such folder; set data.root=DIR", LAYOUT)
    folder = Path(root)
    ids = {i for listed in split_ids(folder).values() for i in listed}
    return tuple(sorted({obj.name for i in sorted(ids) for obj in annotation(folder, i).objects}))


def class_count(root: str | None, classes: list[str] | None) -> int:
    """``${voc_classes:${data.root},${data.classes}}``: the number of classes, given or read from the XML names."""
    return len(classes) if classes else len(class_names(root))


class VOCImages(BoxedImages):
    """Item ``i``: annotation ``i``'s image and its boxes (``BoxedImages``); a difficult object has ``ignored_label``."""

    def __init__(self, annotations: list[VOCAnnotation], root: Path, classes: list[str], owner: str, channels: int, size: int):
        self.annotations, self.root, self.owner, self.channels = annotations, root, owner, channels
        index = {name: i for i, name in enumerate(classes)}
        labels = [[ignored_label(index[o.name]) if o.difficult else index[o.name] for o in a.objects] for a in annotations]
        boxes = [torch.tensor([o.box for o in a.objects]) for a in annotations]
        super().__init__([(b, torch.tensor(n, dtype=torch.long)) for b, n in zip(boxes, labels)], size)

    def pixels(self, i: int) -> Tensor:
        ann = self.annotations[i]
        pixels = read_image(self.owner, self.root / "JPEGImages" / ann.file_name, self.channels, LAYOUT)
        if tuple(pixels.shape[-2:]) != (ann.height, ann.width):
            got = f"{pixels.shape[-1]}x{pixels.shape[-2]}"
            raise refuse(self.owner, ann.path, f"<size> is {ann.width}x{ann.height} but its image is {got}", LAYOUT)
        return pixels


class VOCFolderDataModule(BoxedFolderDataModule):
    """``(images, boxes, labels)`` batches from a VOC folder, as ``coco_folder`` gives them: xyxy boxes in pixels of
    the resized image, labels padded with -1; a difficult object of class c has label ``ignored_label(c)``."""

    layout = LAYOUT

    def __init__(
        self,
        name: str = "voc_folder",
        root: str | None = None,
        classes: list[str] | None = None,
        num_classes: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        image_size: int = 96,
        channels: int = 3,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        on_device: str | bool = "auto",
        storage: str = "auto",
        memory_limit_gb: float | None = None,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        hflip: bool = False,
    ) -> None:
        super().__init__(name, batch_size, eval_batch_size, num_workers, on_device)
        self.folder_settings(root, image_size, channels, val_fraction, test_fraction, split_seed, hflip)
        self.classes = list(classes) if classes else list(class_names(root))
        self.num_classes = len(self.classes) if num_classes is None else num_classes
        need = f"num_classes must be {len(self.classes)}, one per class"
        check(self.owner, self.num_classes == len(self.classes), need, num_classes)

        self.annotations = self.split_annotations()
        self.storage_settings(storage, memory_limit_gb, pin_memory, persistent_workers)

    def split_annotations(self) -> dict[str, list[VOCAnnotation]]:
        """Every split's annotations, read and their names checked (no image decoded); a missing split off train."""
        found = {split: [annotation(self.root, i) for i in listed] for split, listed in split_ids(self.root).items()}
        for ann in (a for listed in found.values() for a in listed):
            unknown = [obj.name for obj in ann.objects if obj.name not in self.classes]
            if unknown:
                problem = f"object name {unknown[0]!r} is not among data.classes {self.classes}"
                raise refuse(self.owner, ann.path, problem, LAYOUT)
        return self.with_missing_splits(found)

    def boxed_splits(self) -> dict[str, VOCImages]:
        args = (self.root, self.classes, self.owner, self.channels, self.image_size)
        return {split: VOCImages(listed, *args) for split, listed in self.annotations.items()}
