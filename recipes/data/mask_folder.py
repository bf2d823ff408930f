"""Your own segmentation data: images and their class-id masks (``data=mask_folder data.root=DIR``).

Each mask is a PNG with one class id per pixel (grey or palette, as VOC's SegmentationClass), of its image's size
and file stem; 255 marks void pixels (``ignore_index``, as VOC and Cityscapes do), which no loss and no metric
counts. Images of any size and mode are resized to ``image_size`` squared (bilinear), masks with them (nearest).
The number of classes is one more than the largest id found in the training masks unless ``mask_classes`` is
given. A missing ``val`` or ``test`` split is split off ``train`` (``val_fraction``, ``test_fraction``, seeded).
``storage=stream`` reads each pair in the DataLoader workers instead of once up front (recipes/data/streaming.py).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from losses.errors import check, check_integer
from recipes.data.base import SPLITS, Splits
from recipes.data.layout import FolderDataModule, read_image, refuse, resize_image
from recipes.data.streaming import Streamed, decode_all

LAYOUT = """\
    DIR/train/images/<stem>.png|.jpg   DIR/train/masks/<stem>.png   (one class id per pixel; 255 = void)
    DIR/val/images/...   DIR/val/masks/...     (optional: split off train)
    DIR/test/images/...  DIR/test/masks/...    (optional: split off train)"""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
OWNER = "data 'mask_folder'"


def pairs(root: Path, split: str, owner: str = OWNER) -> list[tuple[Path, Path]]:
    """(image, mask) files of one split folder, paired by stem; every image needs its mask and every mask its image."""
    images_dir, masks_dir = root / split / "images", root / split / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise refuse(owner, folder, "folder missing", LAYOUT)
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in sorted(masks_dir.iterdir()) if p.suffix.lower() == ".png"}
    if not images:
        raise refuse(owner, images_dir, "no images", LAYOUT)
    unmasked, orphans = sorted(images.keys() - masks.keys()), sorted(masks.keys() - images.keys())
    if unmasked:
        raise refuse(owner, masks_dir / f"{unmasked[0]}.png", f"mask of {images[unmasked[0]].name} missing", LAYOUT)
    if orphans:
        raise refuse(owner, masks[orphans[0]], "mask without an image of the same stem", LAYOUT)
    return [(images[stem], masks[stem]) for stem in sorted(images)]


def read_mask(path: Path, owner: str = OWNER) -> Tensor:
    """uint8 ``[H, W]`` class ids of a one-channel PNG (grey or palette indices)."""
    from torchvision.io import ImageReadMode, decode_png, read_file

    try:
        mask = decode_png(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
    except RuntimeError as err:
        raise refuse(owner, path, f"not a PNG torchvision can decode ({err})", LAYOUT) from None
    if mask.shape[0] != 1 or mask.dtype != torch.uint8:
        need = "one 8-bit channel of class ids (grey or palette)"
        raise refuse(owner, path, f"the mask has {mask.shape[0]} channels of {mask.dtype}; it must have {need}", LAYOUT)
    return mask[0]


@lru_cache(maxsize=8)
def found_classes(root: str, ignore_index: int = 255) -> int:
    """``${mask_classes:${data.root}}``: one more than the largest class id in the training masks (void left out)."""
    folder = Path(root or "")
    if not root or not folder.is_dir():
        raise refuse(OWNER, root, "no such folder; set data.root=DIR", LAYOUT)
    largest = 0
    for _, mask_path in pairs(folder, "train"):
        ids = read_mask(mask_path).unique()
        ids = ids[ids != ignore_index]
        largest = max(largest, int(ids.max()) if len(ids) else 0)
    return largest + 1


class MaskPairs(Dataset):
    """Item ``i``: pair ``i`` decoded, checked (sizes match, ids below ``classes`` or void) and resized to ``size``:
    a uint8 image ``[C, S, S]`` (bilinear) and its int64 class ids ``[S, S]`` (nearest)."""

    def __init__(self, pairs: list[tuple[Path, Path]], owner: str, channels: int, size: int, classes: int, void: int):
        self.pairs, self.owner, self.channels, self.size, self.classes, self.void = pairs, owner, channels, size, classes, void

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        image_path, mask_path = self.pairs[i]
        image, mask = read_image(self.owner, image_path, self.channels, LAYOUT), read_mask(mask_path, self.owner)
        if image.shape[-2:] != mask.shape:
            size = f"{mask.shape[1]}x{mask.shape[0]}, its image {image.shape[2]}x{image.shape[1]}"
            raise refuse(self.owner, mask_path, f"the mask is {size}; they must match", LAYOUT)
        ids = mask[mask != self.void]
        if len(ids) and int(ids.max()) >= self.classes:
            classes = f"data.mask_classes is {self.classes} (ids 0..{self.classes - 1}, {self.void} void)"
            raise refuse(self.owner, mask_path, f"class id {int(ids.max())} but {classes}", LAYOUT)
        mask = F.interpolate(mask[None, None].float(), size=(self.size,) * 2, mode="nearest-exact")[0, 0]
        return resize_image(image, self.size), mask.long()


class MaskFolderDataModule(FolderDataModule):
    """``(images, masks)`` batches: uint8 images ``[N, C, S, S]``, int64 class maps ``[N, S, S]`` (void = ``ignore_index``)."""

    fields = ("images", "masks")
    batches = ("images+masks",)
    layout = LAYOUT

    def __init__(
        self,
        name: str = "mask_folder",
        root: str | None = None,
        image_size: int = 96,
        channels: int = 3,
        mask_classes: int | None = None,
        mask_names: list[str] | None = None,
        ignore_index: int = 255,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 16,
        eval_batch_size: int = 32,
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
        self.ignore_index = check_integer(self.owner, "ignore_index", ignore_index, low=0)
        self.mask_classes = found_classes(root, ignore_index) if mask_classes is None else mask_classes
        check_integer(self.owner, "mask_classes", self.mask_classes, low=2)
        names = list(mask_names) if mask_names else ["background", *(f"class{c}" for c in range(1, self.mask_classes))]
        check(self.owner, len(names) == self.mask_classes, f"mask_names must name the {self.mask_classes} classes", names)
        self.mask_names = names

        self.pairs = self.split_pairs()
        self.storage_settings(storage, memory_limit_gb, pin_memory, persistent_workers)

    def split_pairs(self) -> dict[str, list[tuple[Path, Path]]]:
        """Every split's (image, mask) files, none decoded; a missing val or test split off train."""
        present = {split: pairs(self.root, split, self.owner) for split in SPLITS if (self.root / split).is_dir()}
        if "train" not in present:
            raise refuse(self.owner, self.root / "train", "folder missing", LAYOUT)
        return self.with_missing_splits(present)

    def samples(self, split: str) -> MaskPairs:
        return MaskPairs(self.pairs[split], self.owner, self.channels, self.image_size, self.mask_classes, self.ignore_index)

    def decoded_size(self) -> tuple[int, str]:
        count = sum(len(p) for p in self.pairs.values())
        return count * (self.channels + 8) * self.image_size**2, f"{count} images and their int64 masks"

    def load(self) -> Splits:
        return {split: decode_all(self.samples(split)) for split in self.pairs}

    def streamed_splits(self) -> dict[str, Streamed]:
        return {split: Streamed(self.samples(split)) for split in self.pairs}
