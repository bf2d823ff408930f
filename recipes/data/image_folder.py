"""Your own images: a folder in torchvision's ImageFolder layout (``data=image_folder data.root=DIR``).

Layout::

    DIR/train/<class>/<image>      required; the classes are its folders, in sorted order (as ImageFolder)
    DIR/val/<class>/<image>        optional; split off train (stratified, ``split_seed``) when absent
    DIR/test/<class>/<image>       optional; likewise

Images may be any size and mode torchvision.io decodes (PNG incl. 16-bit, JPEG, WebP, GIF; grey, RGB, RGBA:
alpha is dropped). They are decoded one file at a time (``ImageFiles``, a ``Dataset`` a streaming datamodule can
reuse), brought to 8 bits, resized to ``image_size`` (the shorter side, then a centre crop, as torchvision's
references evaluate; or ``resize=stretch``) and held in memory as uint8 like every image datamodule here.

The number of classes and the channels come from the folder, before anything else is built: the configs read
them through the resolvers ``${folder_classes:DIR}`` and ``${folder_channels:DIR}`` (recipes/run/resolvers.py),
so a model's ``${data.num_classes}`` and ``${data.channels}`` are the data's. Channels are 1 when every image is
grey and 3 otherwise (found from the file headers); ``channels=3`` reads grey images as RGB.

A folder that does not have this layout is refused before any image is decoded, with one message naming
the path and showing the layout.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from losses.errors import ConfigError, check, check_integer
from recipes.data.augment import random_hflip
from recipes.data.images import ImageDataModule
from recipes.data.sources import Arrays, stratified_split
from recipes.data.streaming import Streamed, Streaming, decode_all
from recipes.data.tuples import TupleDataModule
from recipes.data.views import resized_crop_and_rotate

SPLITS = ("train", "val", "test")
EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")  # what torchvision.io.decode_image reads
AUGMENTS = ("crop_flip", "shift", "none")
RESIZES = ("crop", "stretch")
GREY_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")  # PIL modes without colour
LAYOUT = (
    "expected DIR/train/<class>/<image> (optional DIR/val/<class>/<image> and DIR/test/<class>/<image>), "
    f"images in {', '.join(EXTENSIONS)}"
)
OWNER = "data 'image_folder'"


def visible(entries: list[str]) -> list[str]:
    """Names that are not hidden (``.DS_Store``, ``.ipynb_checkpoints``), sorted."""
    return sorted(e for e in entries if not e.startswith("."))


@dataclass
class FolderLayout:
    """The classes (train's folders, sorted) and, per split present, its image files and their labels."""

    root: Path
    classes: list[str]
    files: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, list[int]] = field(default_factory=dict)


def refuse(what: str, owner: str = OWNER) -> ConfigError:
    return ConfigError(f"{owner}: {what}; {LAYOUT}")


def check_class_folder(folder: Path, owner: str) -> None:
    """Every file under a class folder is an image torchvision.io reads (hidden files aside), and there is one."""
    images = 0
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = visible(dirs)
        for name in visible(files):
            if not name.lower().endswith(EXTENSIONS):
                path = Path(parent) / name
                raise refuse(f"{path} is not an image torchvision.io reads; convert it or move it out", owner)
            images += 1
    if images == 0:
        raise refuse(f"the class folder {folder} holds no images", owner)


def scan_split(folder: Path, owner: str) -> list[str]:
    """The class folders of one split; a file where class folders belong is refused."""
    names = visible(os.listdir(folder))
    stray = [n for n in names if not (folder / n).is_dir()]
    if stray:
        raise refuse(f"{folder / stray[0]} is a file where class folders belong; move it into {folder}/<class>/", owner)
    if not names:
        raise refuse(f"{folder} holds no class folders", owner)
    for name in names:
        check_class_folder(folder / name, owner)
    return names


def scan_folder(root: str | os.PathLike | None, owner: str = OWNER) -> FolderLayout:
    """Check ``root`` against the layout and list its splits' files with ImageFolder's conventions (no decoding)."""
    from torchvision.datasets.folder import make_dataset

    if root is None or str(root) in ("", "None"):
        raise refuse("root is not set; give the folder with data.root=DIR", owner)
    path = Path(root).expanduser()
    if not path.exists():
        raise refuse(f"root {path} does not exist", owner)
    if not path.is_dir():
        raise refuse(f"root {path} is a file, not a folder", owner)
    folders = [n for n in visible(os.listdir(path)) if (path / n).is_dir()]
    if "train" not in folders:
        held = f"it holds {', '.join(f + '/' for f in folders)}; if those are classes, move them into {path / 'train'}/"
        raise refuse(f"root {path} has no train/ folder ({held if folders else 'it holds no folders'})", owner)
    unknown = [n for n in folders if n not in SPLITS]
    if unknown:
        raise refuse(f"root {path} holds {unknown[0]}/, but only train/, val/ and test/ are read; rename or move it", owner)
    classes = scan_split(path / "train", owner)
    layout = FolderLayout(path, classes)
    index = {name: i for i, name in enumerate(classes)}
    for split in (s for s in SPLITS if s in folders):
        extra = sorted(set(scan_split(path / split, owner)) - set(classes))
        if extra:
            raise refuse(
                f"{path / split / extra[0]} is a class that {path / 'train'} lacks; classes are: {', '.join(classes)}", owner
            )
        samples = make_dataset(str(path / split), index, extensions=EXTENSIONS, allow_empty=True)
        layout.files[split] = [file for file, _ in samples]
        layout.labels[split] = [label for _, label in samples]
    return layout


@functools.lru_cache(maxsize=8)
def header_channels(files: tuple[str, ...], owner: str = OWNER) -> int:
    """1 when every image's header says grey (with or without alpha, 8 or 16 bits), else 3; headers only."""
    from PIL import Image, UnidentifiedImageError

    for file in files:
        try:
            with Image.open(file) as image:
                mode = image.mode
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise ConfigError(f"{owner}: cannot read the image {file} ({err}); fix or remove it") from None
        if mode not in GREY_MODES:
            return 3
    return 1


def folder_classes(root: str) -> int:
    """``${folder_classes:DIR}``: the number of class folders of ``DIR/train``."""
    return len(scan_folder(root).classes)


def folder_channels(root: str) -> int:
    """``${folder_channels:DIR}``: 1 if every image under ``DIR`` is grey, else 3."""
    layout = scan_folder(root)
    return header_channels(tuple(f for files in layout.files.values() for f in files))


def scan_unlabelled(root: str | os.PathLike, owner: str = OWNER) -> list[str]:
    """The image files anywhere under ``root`` (sorted; hidden files aside), for pre-training without labels."""
    path = Path(root).expanduser()
    layout = f"expected a folder of images in {', '.join(EXTENSIONS)} (subfolders are read too, their names ignored)"
    if not path.is_dir():
        raise ConfigError(f"{owner}: unlabelled {path} is not a folder; {layout}")
    check_class_folder(path, owner)  # images only, at least one
    files = []
    for parent, dirs, names in os.walk(path, followlinks=True):
        dirs[:] = visible(dirs)
        files += [os.path.join(parent, name) for name in visible(names)]
    return sorted(files)


def read_image(file: str, channels: int, size: int, resize: str, owner: str = OWNER) -> Tensor:
    """One file as uint8 ``[channels, size, size]``: decoded by torchvision.io, 16-bit scaled to 8, resized."""
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2 import functional as TF

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        pixels = decode_image(file, mode=mode)
    except RuntimeError as err:
        reason = str(err).splitlines()[-1].rpartition(", ")[2] or str(err)
        raise ConfigError(f"{owner}: cannot decode the image {file} ({reason}); fix or remove it") from None
    if pixels.ndim == 4:  # an animated GIF: its first frame
        pixels = pixels[0]
    pixels = TF.to_dtype(pixels, torch.uint8, scale=True)
    if resize == "stretch":
        return TF.resize(pixels, [size, size], antialias=True)
    return TF.center_crop(TF.resize(pixels, size, antialias=True), [size, size])


class ImageFiles(Dataset):
    """Item ``i``: file ``i`` decoded and resized (``read_image``), and its label; nothing is read up front."""

    def __init__(self, files: list[str], labels: list[int], channels: int, size: int, resize: str, owner: str = OWNER):
        self.files, self.labels = files, torch.tensor(labels, dtype=torch.long)
        self.channels, self.size, self.resize, self.owner = channels, size, resize, owner

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return read_image(self.files[i], self.channels, self.size, self.resize, self.owner), self.labels[i]


class ImageFolderDataModule(Streaming, ImageDataModule):
    """``(image, label)`` batches from ``root`` in the ImageFolder layout; every image task reads it.

    ``augment`` (training only, on the batch's device): ``crop_flip`` is torchvision's reference recipe, a
    random resized crop of area ``crop_scale`` and aspect ``crop_ratio`` and a horizontal flip (``hflip``);
    ``shift`` moves digits by up to ``shift`` pixels as on mnist5k; ``none``. ``shift: 0`` turns any augmentation
    off (what task=vae and task=simclr set: they take the images as they are). ``mean``/``std``: per-channel
    normalisation in [0, 1] units; null: the training split's. ``imbalance`` and ``label_noise`` as on mnist5k.

    ``storage``: ``memory`` decodes every image once and holds the splits (on the GPU with ``on_device``); ``stream``
    leaves them on disk, decoded and augmented per sample in ``num_workers`` DataLoader workers (recipes/data/
    streaming.py: the same crop, flip or shift, drawn per sample from a seeded, resumable order); ``auto`` streams
    when the decoded images would take more than ``memory_limit_gb`` (null: half the memory available).
    ``unlabelled``: a folder of images without classes; the training batches come from it (labels -1), the
    labelled splits serve evaluation (SimCLR's probes and kNN); it always streams.
    """

    datasets = ("image_folder",)

    def __init__(
        self,
        name: str = "image_folder",
        root: str | None = None,
        image_size: int = 64,
        channels: int | None = None,
        num_classes: int | None = None,
        resize: str = "crop",
        augment: str = "crop_flip",
        crop_scale: tuple[float, float] | list[float] = (0.08, 1.0),
        crop_ratio: tuple[float, float] | list[float] = (0.75, 1.333),
        hflip: bool = True,
        shift: int = 2,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        storage: str = "auto",
        memory_limit_gb: float | None = None,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        unlabelled: str | None = None,
        **image_args,
    ) -> None:
        owner = f"data '{name}'"
        self.layout = scan_folder(root, owner)
        found = len(self.layout.classes)
        if num_classes is not None and num_classes != found:
            raise ConfigError(
                f"{owner}: num_classes is {num_classes} but {self.layout.root / 'train'} has {found} class folders; "
                "leave data.num_classes unset (it is read from the folder)"
            )
        if channels is None:
            channels = header_channels(tuple(f for files in self.layout.files.values() for f in files), owner)
        super().__init__(
            name=name,
            dataset="image_folder",
            num_classes=found,
            channels=channels,
            image_size=image_size,
            shift=shift,
            hflip=hflip,
            **image_args,
        )
        check(self.owner, channels in (1, 3), "channels must be 1 (grey) or 3 (RGB)", channels)
        check_integer(self.owner, "image_size", image_size, low=8)
        check(self.owner, resize in RESIZES, f"resize must be one of {', '.join(RESIZES)}", resize)
        check(self.owner, augment in AUGMENTS, f"augment must be one of {', '.join(AUGMENTS)}", augment)
        check_integer(self.owner, "shift", shift, low=0)
        scale, ratio = list(crop_scale), list(crop_ratio)
        check(self.owner, len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1, "crop_scale must be [low, high] in (0, 1]", scale)
        check(self.owner, len(ratio) == 2 and 0 < ratio[0] <= ratio[1], "crop_ratio must be [low, high] with 0 < low", ratio)
        for key, stat in (("mean", mean), ("std", std)):
            ok = stat is None or (len(stat) == channels and all(isinstance(v, (int, float)) for v in stat))
            check(self.owner, ok, f"{key} must be null or {channels} numbers, one per channel, in [0, 1] units", stat)
        check(self.owner, std is None or min(std) > 0, "std must be > 0 in every channel", std)
        self.classes, self.resize, self.augmentation = self.layout.classes, resize, augment
        self.crop_scale, self.crop_ratio = (float(scale[0]), float(scale[1])), (float(ratio[0]), float(ratio[1]))
        self.given_stats = None if mean is None or std is None else (torch.tensor(mean), torch.tensor(std))
        if (mean is None) != (std is None):
            raise ConfigError(f"{self.owner}: give both mean and std, or neither (got mean={mean}, std={std})")
        self.storage_settings(storage, memory_limit_gb, pin_memory, persistent_workers)
        self.unlabelled_files = scan_unlabelled(unlabelled, self.owner) if unlabelled not in (None, "", "None") else []
        self.unlabelled: Streamed | None = None

    def decoded_size(self) -> tuple[int, str]:
        count = sum(len(files) for files in self.layout.files.values())
        return count * self.channels * self.image_size**2, f"{count} images"

    def split_files(self) -> dict[str, tuple[list[str], Tensor]]:
        """Every split's files and labels, no image decoded; the ones the folder lacks split off train, stratified
        and seeded."""
        found = {split: (files, torch.tensor(self.layout.labels[split])) for split, files in self.layout.files.items()}
        files, labels = found.pop("train")
        missing = [s for s in ("test", "val") if s not in found]
        fractions = tuple(self.test_fraction if s == "test" else self.val_fraction for s in missing)
        *held, train = stratified_split(labels, fractions, self.split_seed)
        for split, rows in (*zip(missing, held), ("train", train)):
            found[split] = ([files[i] for i in rows.tolist()], labels[rows])
        return found

    def source_splits(self) -> dict[str, Arrays]:
        """Every split decoded (``split_files``)."""
        return {split: self.decode(self.image_files(files, labels)) for split, (files, labels) in self.split_files().items()}

    def image_files(self, files: list[str], labels: Tensor | list[int]) -> ImageFiles:
        """``files`` as a per-item Dataset of images decoded and resized as this folder's, with their labels."""
        return ImageFiles(files, list(map(int, labels)), self.channels, self.image_size, self.resize, self.owner)

    def decode(self, files: ImageFiles) -> tuple[Tensor, Tensor]:
        """Every image of ``files`` in one uint8 tensor, and their labels (an empty split: none)."""
        if len(files) == 0:
            return torch.empty(0, self.channels, self.image_size, self.image_size, dtype=torch.uint8), files.labels
        return decode_all(files)

    def register_stats(self, mean: Tensor, std: Tensor) -> None:
        """The given ``mean`` and ``std`` when set, else the training split's."""
        super().register_stats(*(self.given_stats or (mean, std)))

    def setup(self, stage: str | None = None) -> None:
        """The labelled splits (``Streaming.setup``), and the unlabelled folder's files, streamed."""
        super().setup(stage)
        if self.unlabelled_files and self.unlabelled is None:
            files = self.unlabelled_files
            self.unlabelled = Streamed(self.image_files(files, [-1] * len(files)), self.worker_transform())

    def streamed_splits(self) -> dict[str, Streamed]:
        """The splits as per-sample Datasets, the training one made harder as asked."""
        found = self.split_files()
        files, labels = found["train"]
        rows, labels = self.harder_training_split(torch.arange(len(files)), labels)
        found["train"] = ([files[i] for i in rows.tolist()], labels)
        return {split: Streamed(self.image_files(f, y)) for split, (f, y) in found.items()}

    def worker_transform(self) -> Callable[..., tuple] | None:
        """``augment`` per uint8 image, in torchvision.transforms.v2, as the in-memory path draws it per batch:
        crop_flip a random resized crop (+ flip); shift a random crop of the image padded by ``shift`` pixels of
        the mean colour (normalised: 0, as the in-memory path pads) (+ flip)."""
        from torchvision.transforms import v2

        if self.augmentation == "none" or self.shift == 0:
            return None
        size = [self.image_size, self.image_size]
        if self.augmentation == "shift":
            fill = [round(float(m) * 255) for m in self.mean.flatten()]
            steps = [v2.RandomCrop(size, padding=self.shift, fill=fill)]
        else:
            steps = [v2.RandomResizedCrop(size, scale=self.crop_scale, ratio=self.crop_ratio, antialias=True)]
        return v2.Compose([*steps, v2.RandomHorizontalFlip()] if self.hflip else steps)

    def streams(self, split: str, train: bool) -> Streamed | None:
        """The unlabelled folder for training when given, else as ``Streaming`` serves it."""
        if train and split == "train" and self.unlabelled is not None:
            return self.unlabelled
        return super().streams(split, train)

    def augment(self, images: Tensor) -> Tensor:
        if self.augmentation == "none" or self.shift == 0 or self.streams("train", train=True) is not None:
            return images  # none asked, or drawn per sample in the workers
        if self.augmentation == "shift":
            return super().augment(images)
        images = resized_crop_and_rotate(images, self.crop_scale, self.crop_ratio, degrees=0.0)
        return random_hflip(images) if self.hflip else images


class ImageFolderTuplesDataModule(TupleDataModule, ImageFolderDataModule):
    """Pairs or triplets of ``root``'s images for verification: a class is an identity.

    ``unseen_classes`` (open set) are class folder names or indices; null: the last 40% of the classes
    (at least 2), as mnist5k_pairs holds out digits 6-9. The tuples are drawn from decoded images held in memory
    (``storage=stream`` is refused).
    """

    streamable = False

    def __init__(self, unseen_classes: list[str | int] | None = None, name: str = "image_folder_pairs", **args) -> None:
        classes = scan_folder(args.get("root"), f"data '{name}'").classes
        if unseen_classes is None:
            count = max(2, round(0.4 * len(classes)))
            unseen_classes = list(range(len(classes) - count, len(classes)))
        unknown = [c for c in unseen_classes if not (c in classes or (isinstance(c, int) and 0 <= c < len(classes)))]
        check(f"data '{name}'", not unknown, f"unseen_classes must be class folders of train/ ({', '.join(classes)})", unknown)
        indices = [c if isinstance(c, int) else classes.index(c) for c in unseen_classes]
        super().__init__(unseen_classes=indices, name=name, **args)
