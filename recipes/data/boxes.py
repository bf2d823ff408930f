"""What the detection folders (voc_folder, coco_folder) share: one reader per image, held or streamed.

A format reads and checks its annotations up front into each image's boxes and labels; ``BoxedImages`` decodes one
image (the format's ``pixels(i)``, with its own checks and messages), resizes it and scales its boxes with it. The
same item is what ``storage=memory`` stacks and what ``storage=stream`` decodes in the DataLoader workers.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from recipes.data.layout import FolderDataModule, resize_image
from recipes.data.streaming import Streamed, decode_all


class BoxedImages(Dataset):
    """Item ``i``: image ``i`` (``pixels(i)``) resized to ``size`` (uint8 ``[C, S, S]``), its xyxy boxes (``targets[i]``:
    pixels of the original image, scaled in their own dtype) scaled with it, and their labels, padded to ``most``
    objects (label -1)."""

    def __init__(self, targets: list[tuple[Tensor, Tensor]], size: int) -> None:
        self.targets, self.size = targets, size
        self.most = max([len(labels) for _, labels in targets] + [1])

    def __len__(self) -> int:
        return len(self.targets)

    def pixels(self, i: int) -> Tensor:
        """Image ``i`` decoded (uint8 ``[C, H, W]``) and checked against its annotation."""
        raise NotImplementedError(f"{type(self).__name__} must implement pixels()")

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        pixels, (found, names), size = self.pixels(i), self.targets[i], self.size
        height, width = pixels.shape[-2:]
        boxes, labels = torch.zeros(self.most, 4), torch.full((self.most,), -1, dtype=torch.long)
        boxes[: len(found)] = found * torch.tensor([size / width, size / height] * 2, dtype=found.dtype)
        labels[: len(names)] = names
        return resize_image(pixels, size), boxes, labels


class BoxedFolderDataModule(FolderDataModule):
    """A detection folder's ``(images, boxes, labels)`` splits from its ``boxed_splits()``: stacked in memory, or
    streamed."""

    fields = ("images", "boxes", "labels")
    batches = ("images+boxes",)

    def boxed_splits(self) -> dict[str, BoxedImages]:
        """Every split's images with their boxes, read from annotations already checked (no image decoded)."""
        raise NotImplementedError(f"{type(self).__name__} must implement boxed_splits()")

    def decoded_size(self) -> tuple[int, str]:
        splits = self.boxed_splits().values()
        count, most = sum(len(s) for s in splits), max(s.most for s in splits)
        return count * (self.channels * self.image_size**2 + most * (16 + 8)), f"{count} images and their boxes"

    def load(self) -> dict[str, tuple[Tensor, ...]]:
        return {split: decode_all(images) for split, images in self.boxed_splits().items()}

    def streamed_splits(self) -> dict[str, Streamed]:
        return {split: Streamed(images) for split, images in self.boxed_splits().items()}
