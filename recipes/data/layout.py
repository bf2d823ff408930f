"""What the folder formats of a user's own data share: the refusal that shows the layout, image reading, splits.

A malformed folder is refused with one message that names the file and shows the layout the format expects.
Images are decoded with torchvision (any mode: grey, RGB, RGBA, palette) into the channels asked for and resized
to a square side; splits a folder lacks are cut off its training split, seeded. ``hflip`` mirrors a random half of
the training samples with their masks or boxes: per batch on its device from memory, per sample in the workers
(torchvision.transforms.v2 on tv_tensors) when streamed.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.errors import ConfigError, check, check_integer
from recipes.data.base import InMemoryDataModule, check_fractions
from recipes.data.streaming import Streaming

# a crowd (COCO iscrowd) or difficult (VOC) object of class c is held as label IGNORED - c: no training
# target (labels < 0 are padding to the detector), and a box that mAP ignores (torchmetrics' iscrowd)
IGNORED = -2


def ignored_label(label: int) -> int:
    """The label that holds an object of class ``label`` that training skips and mAP ignores."""
    return IGNORED - label


def refuse(owner: str, path: Path | str, problem: str, layout: str) -> ConfigError:
    """``data 'voc_folder': <path>: <problem>`` followed by the layout the format expects."""
    return ConfigError(f"{owner}: {path}: {problem}. Expected layout:\n{layout.rstrip()}")


def read_image(owner: str, path: Path, channels: int, layout: str) -> Tensor:
    """uint8 ``[channels, H, W]`` of an image file in any mode (grey, RGB, RGBA, palette; PNG, JPEG, ...)."""
    from torchvision.io import ImageReadMode, decode_image

    if not path.is_file():
        raise refuse(owner, path, "image file missing", layout)
    try:
        return decode_image(str(path), mode=ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB)
    except RuntimeError as err:
        raise refuse(owner, path, f"not an image torchvision can decode ({err})", layout) from None


def resize_image(pixels: Tensor, size: int) -> Tensor:
    """uint8 ``[C, H, W]`` resized to ``size x size`` (bilinear, antialiased); unchanged when it has that size."""
    if pixels.shape[-2:] == (size, size):
        return pixels
    x = F.interpolate(pixels[None].float(), size=(size, size), mode="bilinear", antialias=True)
    return x[0].round().clamp(0, 255).to(torch.uint8)


def split_off(count: int, missing: list[str], fractions: dict[str, float], seed: int) -> dict[str, Tensor]:
    """Indices into ``count`` training items for ``train`` and each ``missing`` split (a seeded random share each,
    at least one item; the rest stays in train)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    out, start = {}, 0
    for split in missing:
        share = max(1, round(fractions[split] * count))
        out[split], start = order[start : start + share], start + share
    out["train"] = order[start:].sort().values
    return out


def mirror_boxes(boxes: Tensor, width: int) -> Tensor:
    """xyxy boxes of an image of ``width`` pixels mirrored left to right (as torchvision's ``horizontal_flip``)."""
    return torch.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]], -1)


def mirrored(fields: tuple[str, ...], batch: tuple[Tensor, ...], flip: Tensor) -> tuple[Tensor, ...]:
    """The samples of ``batch`` where ``flip``, mirrored: images and masks, and boxes but their padding (label -1)."""
    parts = dict(zip(fields, batch))
    width = parts["images"].shape[-1]
    for name, t in parts.items():
        if name in ("images", "masks"):
            parts[name] = torch.where(flip.view(-1, *[1] * (t.ndim - 1)), t.flip(-1), t)
        elif name == "boxes":
            real = flip[:, None] & (parts["labels"] != -1)
            parts[name] = torch.where(real[..., None], mirror_boxes(t, width), t)
    return tuple(parts.values())


class MirrorSample:
    """``v2.RandomHorizontalFlip`` of one uint8 sample with its mask or boxes (as tv_tensors), then plain tensors."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields

    def __call__(self, *sample: Tensor) -> tuple[Tensor, ...]:
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        parts = dict(zip(self.fields, sample))
        side = tuple(parts["images"].shape[-2:])
        wrap = {
            "images": tv_tensors.Image,
            "masks": tv_tensors.Mask,
            "boxes": lambda b: tv_tensors.BoundingBoxes(b, format="XYXY", canvas_size=side),
        }
        wrapped = [wrap[name](t) if name in wrap else t for name, t in parts.items()]
        out = dict(zip(self.fields, (t.as_subclass(Tensor) for t in v2.RandomHorizontalFlip()(*wrapped))))
        if "boxes" in out:  # padding stays zero, as the in-memory path keeps it
            out["boxes"] = torch.where((out["labels"] == -1)[:, None], parts["boxes"], out["boxes"])
        return tuple(out.values())


class FolderDataModule(Streaming, InMemoryDataModule):
    """What the folder formats share: the root (refused with the ``layout`` when missing), the image side and
    channels, the ``val``/``test`` splits cut off ``train`` where the folder has none, streaming, ``hflip``."""

    layout = ""

    def folder_settings(
        self,
        root: str | None,
        image_size: int,
        channels: int,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        hflip: bool = False,
    ) -> None:
        if not root or not Path(root).is_dir():
            raise refuse(self.owner, root, "no such folder; set data.root=DIR", self.layout)
        check(self.owner, isinstance(hflip, bool), "hflip must be true or false", hflip)
        self.hflip = hflip
        check(self.owner, channels in (1, 3), "channels must be 1 (grey) or 3 (RGB)", channels)
        self.image_size = check_integer(self.owner, "image_size", image_size, low=16)
        check_fractions(self.owner, val_fraction, test_fraction)
        self.root, self.channels = Path(root), channels
        self.fractions, self.split_seed = {"val": val_fraction, "test": test_fraction}, split_seed

    def with_missing_splits(self, splits: dict[str, list]) -> dict[str, list]:
        """``splits`` (each a list of samples, not yet decoded) with a seeded share of ``train`` as each of ``val``
        and ``test`` that is missing."""
        missing = [split for split in ("val", "test") if split not in splits]
        if missing:
            train = splits["train"]
            for split, index in split_off(len(train), missing, self.fractions, self.split_seed).items():
                splits[split] = [train[i] for i in index.tolist()]
        return splits

    def worker_transform(self) -> MirrorSample | None:
        return MirrorSample(self.fields) if self.hflip else None

    def on_after_batch_transfer(self, batch: tuple[Tensor, ...], dataloader_idx: int) -> tuple[Tensor, ...]:
        """Normalised (the base's); in training from memory, a random half mirrored with their targets (``hflip``;
        a streamed batch was mirrored per sample in the workers)."""
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        if self.hflip and self.storage == "memory" and self.trainer is not None and self.trainer.training:
            batch = mirrored(self.fields, batch, torch.rand(len(batch[0]), device=batch[0].device) < 0.5)
        return batch
