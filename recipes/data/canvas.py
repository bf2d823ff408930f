"""Detection and segmentation data: real mnist5k digits pasted on a blank canvas, with exact boxes and masks.

Each split draws its digits from its own source images (a stratified, seeded split of mnist5k), so no
digit seen in training appears in validation or test. A digit is cropped to its ink (pixels >= the ink
threshold; fainter ones are set to 0), optionally rescaled, and pasted where no other box lies within
``gap`` pixels; its box is then exactly the bounding box of its ink and its mask exactly its ink.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from losses.errors import check, check_integer, check_number
from recipes.data.base import SPLITS, InMemoryDataModule, Splits, check_fractions
from recipes.data.sources import load_mnist5k, read_cache, stratified_split, write_cache


@dataclass(frozen=True)
class CanvasSpec:
    """Everything that decides the canvases of a split (with the seed): also the key of the cache."""

    size: int = 96
    min_objects: int = 1
    max_objects: int = 5
    min_scale: float = 0.8
    max_scale: float = 1.4
    scale_levels: int = 7
    ink_threshold: int = 32
    gap: int = 1
    noise: float = 0.0
    clutter: int = 0
    tries: int = 30


@dataclass(frozen=True)
class InkBank:
    """Digits resized to one scale, faint pixels zeroed, with the box of their ink: ``digits[i][r0:r1, c0:c1]``."""

    digits: np.ndarray  # uint8 [N, side, side]
    ink: np.ndarray  # int64 [N, 4]: r0, r1, c0, c1 (exclusive ends)

    def crop(self, i: int) -> np.ndarray:
        r0, r1, c0, c1 = self.ink[i]
        return self.digits[i, r0:r1, c0:c1]


def ink_bank(images: Tensor, scale: float, threshold: int) -> InkBank:
    """Resize every digit by ``scale`` in one batched interpolation and find the box of its ink (vectorised)."""
    side = max(round(images.shape[-1] * scale), 4)
    x = images.float()
    if side != images.shape[-1]:
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=scale < 1)
    x = x.round().clamp_(0, 255).to(torch.uint8)[:, 0]
    x[x < threshold] = 0
    x[~(x.flatten(1) > 0).any(1), side // 2, side // 2] = 255  # an empty image (none in mnist5k) becomes a dot
    rows, cols = (x > 0).any(2).to(torch.uint8), (x > 0).any(1).to(torch.uint8)  # [N, side] each
    first = lambda m: m.argmax(1)  # noqa: E731 - index of the first True
    last = lambda m: side - m.flip(1).argmax(1)  # noqa: E731 - one past the last True
    ink = torch.stack([first(rows), last(rows), first(cols), last(cols)], 1)
    return InkBank(x.numpy(), ink.numpy())


def scale_levels(spec: CanvasSpec) -> np.ndarray:
    """The rescaling factors digits are drawn from (evenly spaced; one level when min == max)."""
    if spec.scale_levels <= 1 or spec.min_scale == spec.max_scale:
        return np.array([spec.min_scale])
    return np.linspace(spec.min_scale, spec.max_scale, spec.scale_levels)


def free_spot(rng: np.random.Generator, placed: np.ndarray, h: int, w: int, size: int, gap: int, tries: int):
    """A top-left corner where an ``h x w`` box keeps ``gap`` pixels from every placed box, or None.

    ``tries`` candidates are drawn at once and tested against all placed boxes in one broadcast.
    """
    if h > size or w > size:
        return None
    ys = rng.integers(0, size - h + 1, tries)
    xs = rng.integers(0, size - w + 1, tries)
    if len(placed):
        x1, y1, x2, y2 = (placed[:, i, None] for i in range(4))  # [k, 1]; x2, y2 exclusive
        clear = (xs + w + gap <= x1) | (xs >= x2 + gap) | (ys + h + gap <= y1) | (ys >= y2 + gap)
        ok = np.flatnonzero(clear.all(0))
        if not len(ok):
            return None
        ys, xs = ys[ok], xs[ok]
    return int(ys[0]), int(xs[0])


def generate(images: Tensor, labels: Tensor, sources: Tensor, count: int, spec: CanvasSpec, seed: int) -> dict[str, Tensor]:
    """``count`` canvases from the digits ``images`` (with their ``labels`` and mnist5k indices ``sources``).

    Returns uint8 ``images [n,1,S,S]`` and ``masks [n,S,S]`` (0 background, digit d -> d + 1), float32 xyxy
    ``boxes [n,K,4]`` (x2, y2 exclusive: the box of pixels [x1, x2) x [y1, y2)), int64 ``labels [n,K]`` and
    ``sources [n,K]`` padded with -1 past each canvas's objects (K = max_objects).
    """
    rng = np.random.default_rng(seed)
    size, k_max = spec.size, spec.max_objects
    canvas = np.zeros((count, size, size), dtype=np.uint8)
    masks = np.zeros((count, size, size), dtype=np.uint8)
    boxes = np.zeros((count, k_max, 4), dtype=np.float32)
    out_labels = np.full((count, k_max), -1, dtype=np.int64)
    out_sources = np.full((count, k_max), -1, dtype=np.int64)
    labels_np, sources_np = labels.numpy(), sources.numpy()
    wanted = rng.integers(spec.min_objects, k_max + 1, count)
    picks = rng.integers(0, len(labels_np), (count, k_max + spec.clutter))
    scales = scale_levels(spec)
    levels = rng.integers(0, len(scales), (count, k_max + spec.clutter))
    used, picks = np.unique(picks, return_inverse=True)  # resize only the digits drawn
    picks = picks.reshape(count, k_max + spec.clutter)
    banks = [ink_bank(images[torch.from_numpy(used)], float(s), spec.ink_threshold) for s in scales]
    labels_np, sources_np = labels_np[used], sources_np[used]
    for n in range(count):
        placed = np.zeros((0, 4), dtype=np.int64)
        for j in range(wanted[n]):
            crop = banks[levels[n, j]].crop(picks[n, j])
            h, w = crop.shape
            spot = free_spot(rng, placed, h, w, size, spec.gap, spec.tries)
            if spot is None:
                continue  # the canvas is full: fewer objects
            y, x = spot
            k = len(placed)
            canvas[n, y : y + h, x : x + w] = crop
            masks[n, y : y + h, x : x + w][crop > 0] = labels_np[picks[n, j]] + 1
            boxes[n, k] = (x, y, x + w, y + h)
            out_labels[n, k], out_sources[n, k] = labels_np[picks[n, j]], sources_np[picks[n, j]]
            placed = np.vstack([placed, [[x, y, x + w, y + h]]])
        for j in range(k_max, k_max + spec.clutter):  # ink that is no object: a corner of another digit
            crop = banks[levels[n, j]].crop(picks[n, j])
            h, w = max(crop.shape[0] // 2, 1), max(crop.shape[1] // 2, 1)
            r0, c0 = rng.integers(0, crop.shape[0] - h + 1), rng.integers(0, crop.shape[1] - w + 1)
            piece = crop[r0 : r0 + h, c0 : c0 + w]
            spot = free_spot(rng, placed, h, w, size, spec.gap, spec.tries)
            if spot is not None:
                canvas[n, spot[0] : spot[0] + h, spot[1] : spot[1] + w] = piece
                placed = np.vstack([placed, [[spot[1], spot[0], spot[1] + w, spot[0] + h]]])
    images_out = torch.from_numpy(canvas).unsqueeze(1)
    if spec.noise > 0:
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(images_out.shape, generator=g).mul_(spec.noise * 255)
        images_out = noise.add_(images_out).round_().clamp_(0, 255).to(torch.uint8)
    return {
        "images": images_out,
        "boxes": torch.from_numpy(boxes),
        "labels": torch.from_numpy(out_labels),
        "masks": torch.from_numpy(masks),
        "sources": torch.from_numpy(out_sources),
    }


class CanvasDataModule(InMemoryDataModule):
    """Digits on a canvas: ``(images, boxes, labels, masks)`` batches for detection and segmentation.

    Boxes are xyxy in pixels, padded with label -1. ``masks: digits`` gives 11 mask classes (background +
    10 digits); ``masks: foreground`` gives 2 (background, digit). ``noise`` (std as a fraction of full
    scale) and ``clutter`` (up to that many half-digit fragments per canvas, in no box and no mask) make
    the task harder. ``cache: true`` keeps the generated splits under ``data_dir/canvas/``.
    """

    fields = ("images", "boxes", "labels", "masks")
    batches = ("images+boxes", "images+masks")

    def __init__(
        self,
        name: str = "canvas",
        data_dir: str = "data",
        size: int = 96,
        min_objects: int = 1,
        max_objects: int = 5,
        min_scale: float = 0.8,
        max_scale: float = 1.4,
        scale_levels: int = 7,
        ink_threshold: int = 32,
        gap: int = 1,
        noise: float = 0.0,
        clutter: int = 0,
        train_size: int = 8000,
        val_size: int = 500,
        test_size: int = 1000,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        masks: str = "digits",
        mask_classes: int = 11,
        num_classes: int = 10,
        channels: int = 1,
        cache: bool = False,
        batch_size: int = 32,
        eval_batch_size: int = 250,
        num_workers: int = 0,
        on_device: str | bool = "auto",
    ) -> None:
        super().__init__(name, batch_size, eval_batch_size, num_workers, on_device)
        self.spec = CanvasSpec(
            size, min_objects, max_objects, min_scale, max_scale, scale_levels, ink_threshold, gap, noise, clutter
        )
        self.check_spec()
        need = {"digits": num_classes + 1, "foreground": 2}
        check(self.owner, masks in need, "masks must be digits or foreground", masks)
        n, binary = need[masks], " or use data=canvas_binary" if masks == "foreground" else ""
        need_classes = f"masks={masks} has {n} classes, so mask_classes must be {n}; set data.mask_classes={n}{binary}"
        check(self.owner, mask_classes == n, need_classes, mask_classes)
        digits = (num_classes, channels) == (10, 1)
        check(self.owner, digits, "digits have num_classes=10 and channels=1", (num_classes, channels))
        for arg, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            check_integer(self.owner, arg, value, low=1)
        check_fractions(self.owner, val_fraction, test_fraction)
        self.num_classes, self.channels, self.image_size = num_classes, channels, size  # predict resizes to image_size
        self.data_dir, self.cache, self.split_seed = data_dir, cache, split_seed
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.fractions = (test_fraction, val_fraction)
        self.masks, self.mask_classes = masks, mask_classes
        self.mask_names = ["background", *map(str, range(10))] if masks == "digits" else ["background", "digit"]
        self.sources: dict[str, Tensor] = {}

    def check_spec(self) -> None:
        """The canvas settings can make canvases: sizes, counts and scales that fit, thresholds in range."""
        s, owner = self.spec, self.owner
        check_integer(owner, "size", s.size, low=32)
        objects = 1 <= s.min_objects <= s.max_objects
        check(owner, objects, "need 1 <= min_objects <= max_objects", (s.min_objects, s.max_objects))
        scales = 0 < s.min_scale <= s.max_scale and s.max_scale * 28 <= s.size
        check(owner, scales, "need 0 < min_scale <= max_scale <= size / 28", (s.min_scale, s.max_scale))
        ink = isinstance(s.ink_threshold, int) and 0 < s.ink_threshold < 256
        check(owner, ink, "ink_threshold must be an integer in [1, 255]", s.ink_threshold)
        for arg in ("noise", "clutter", "gap"):
            check_number(owner, arg, getattr(s, arg), low=0)

    def source_splits(self) -> dict[str, Tensor]:
        """Disjoint mnist5k indices per split (stratified by digit, seeded by ``split_seed``)."""
        _, labels = load_mnist5k(self.data_dir)
        test, val, train = stratified_split(labels, self.fractions, self.split_seed)
        return {"train": train, "val": val, "test": test}

    def cache_path(self, split: str) -> Path:
        key = json.dumps(
            {
                **asdict(self.spec),
                "split": split,
                "count": self.sizes[split],
                "seed": self.split_seed,
                "fractions": self.fractions,
            },
            sort_keys=True,
        )
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        return Path(self.data_dir) / "canvas" / f"{split}-{self.sizes[split]}-{digest}.pt"

    def generate_split(self, split: str) -> dict[str, Tensor]:
        """One split's canvases, from its own source digits, seeded by ``split_seed`` and the split."""
        path = self.cache_path(split)
        cached = read_cache(path, self.owner) if self.cache else None
        if cached is not None:
            return cached
        images, labels = load_mnist5k(self.data_dir)
        idx = self.source_splits()[split]
        seed = self.split_seed * 1000 + SPLITS.index(split)
        data = generate(images[idx], labels[idx], idx, self.sizes[split], self.spec, seed)
        if self.cache:
            write_cache(path, data, self.owner)
        return data

    def load(self) -> Splits:
        splits = {split: self.generate_split(split) for split in SPLITS}
        if self.masks == "foreground":
            for data in splits.values():
                data["masks"] = (data["masks"] > 0).to(torch.uint8)
        self.sources = {split: data["sources"] for split, data in splits.items()}
        return {split: tuple(data[f] for f in self.fields) for split, data in splits.items()}
