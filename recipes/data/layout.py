"""What the folder formats of a user's own data share: the refusal that shows the layout, image reading, splits.

A malformed folder is refused with one message that names the file and shows the layout the format expects.
Images are decoded with torchvision (any mode: grey, RGB, RGBA, palette) into the channels asked for and resized
to a square side; splits a folder lacks are cut off its training split, seeded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.errors import ConfigError, check, check_integer
from recipes.data.base import InMemoryDataModule, check_fractions

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


class FolderDataModule(InMemoryDataModule):
    """What the folder formats share: the root (refused with the ``layout`` when missing), the image side and
    channels, and the ``val``/``test`` splits cut off ``train`` where the folder has none."""

    layout = ""

    def folder_settings(
        self, root: str | None, image_size: int, channels: int, val_fraction: float, test_fraction: float, split_seed: int
    ) -> None:
        if not root or not Path(root).is_dir():
            raise refuse(self.owner, root, "no such folder; set data.root=DIR", self.layout)
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
