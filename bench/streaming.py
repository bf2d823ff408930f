"""The streaming image loader: an ImageFolder export of an IDX dataset, loader samples/s, and accuracy against memory.

    python -m bench.streaming export --idx DIR --out FOLDER [--train 10000] [--test 2000]
    python -m bench.streaming loader --root FOLDER [--workers 0 2] [--batches 40]
    python -m bench.streaming compare --root FOLDER [--seeds 0 1 2] [--epochs 3] [--storages memory stream]
        [--out runs.csv] [overrides ...]
    python -m bench.streaming report runs.csv [more.csv ...]

``export`` writes the first ``--train`` / ``--test`` images of Fashion-MNIST (or MNIST) IDX files as PNG files in
``FOLDER/<split>/<class>/``. ``loader`` times the training loader of ``data=image_folder data.storage=stream``
(decode, augment and collate, no model) for each worker count, in one process. ``compare`` trains classification
on the folder with ``data.storage=memory`` and ``data.storage=stream`` for each seed and writes one row per run;
``report`` prints test accuracy per seed and storage, the mean and std of each, and the difference of the means.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.common import compose_config

CLASS_NAMES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
# the runs' shared settings: Fashion-MNIST's own side, shifted and mirrored as data=fashion_mnist's recipe
FOLDER_RUN = ("data=image_folder", "data.image_size=28", "data.augment=shift", "data.hflip=true", "data.split_seed=0")


def export(idx: Path, out: Path, counts: dict[str, int]) -> None:
    """The first ``counts[split]`` images of each IDX split as ``out/<split>/<class>/<i>.png``."""
    from torchvision.io import write_png

    from recipes.data.sources import read_idx

    stems = {"train": "train", "test": "t10k"}
    for split, count in counts.items():
        images = read_idx(idx / f"{stems[split]}-images-idx3-ubyte.gz")[:count]
        labels = read_idx(idx / f"{stems[split]}-labels-idx1-ubyte.gz")[:count]
        for name in CLASS_NAMES:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels.tolist())):
            write_png(image[None].contiguous(), str(out / split / CLASS_NAMES[label] / f"{i:05d}.png"))
        print(f"{split}: {len(images)} images in {out / split}")


def loader_rate(root: Path, workers: int, batches: int, batch_size: int) -> float:
    """Training samples/s of the streaming loader with ``workers`` workers, after one warm-up batch."""
    from recipes.data.image_folder import ImageFolderDataModule

    dm = ImageFolderDataModule(
        root=str(root), image_size=28, augment="shift", hflip=True, storage="stream", batch_size=batch_size, num_workers=workers
    )
    dm.setup("fit")
    loader = iter(dm.train_dataloader())
    next(loader)  # worker start-up and the first batch are not throughput
    start, samples = time.perf_counter(), 0
    for _, (images, _) in zip(range(batches), loader):
        samples += len(images)
    return samples / (time.perf_counter() - start)


LOADER_LINE = re.compile(r"num_workers=(\d+): (\d+) samples/s \((\d+) batches of (\d+)\)")


def loader_csv(log: Path, out: Path, heading: Callable[[str], dict[str, object]]) -> int:
    """The ``loader`` command's output ``log`` as a CSV, one row per timed pass; each ``#`` line of the log starts a
    group whose columns ``heading(line)`` gives (the load, which pass). Returns the number of rows."""
    rows, extra = [], {}
    for line in log.read_text().splitlines():
        if line.startswith("#"):
            extra = heading(line)
        elif m := LOADER_LINE.match(line):
            workers, rate, batches, size = map(int, m.groups())
            rows.append({**extra, "batches": batches, "batch_size": size, "num_workers": workers, "samples_per_s": rate})
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def compare(root: Path, seeds: list[int], epochs: int, storages: list[str], out: Path, extra: list[str]) -> None:
    """Classification on ``root`` in memory and streamed, per seed; a row per run in ``out``."""
    from train import train

    rows = []
    for seed in seeds:
        for storage in storages:
            overrides = [*FOLDER_RUN, f"data.root={root}", f"data.storage={storage}", f"seed={seed}"]
            overrides += [f"trainer.max_epochs={epochs}", "logger=csv", *extra]
            cfg = compose_config(overrides)
            start = time.perf_counter()
            metrics = train(cfg)
            seconds = time.perf_counter() - start
            tests = {k: round(float(v), 5) for k, v in sorted(metrics.items()) if k.startswith("test/")}
            row = {"storage": storage, "seed": seed, "run_seconds": round(seconds, 1), **tests}
            rows.append({**row, "overrides": " ".join(overrides), "commit": commit()})
            print(row, flush=True)
            with out.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)


def report(files: list[Path]) -> None:
    """Test accuracy (points) per seed and storage, mean and std per storage, and stream minus memory."""
    import pandas as pd

    runs = pd.concat([pd.read_csv(f) for f in files])
    table = runs.pivot_table(index="seed", columns="storage", values="test/acc") * 100
    table["stream - memory"] = table["stream"] - table["memory"]
    print(table.round(2).to_string())
    print((table.agg(["mean", "std"])).round(2).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export")
    p.add_argument("--idx", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--test", type=int, default=2000)
    p = sub.add_parser("loader")
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p = sub.add_parser("compare")
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--storages", nargs="+", default=["memory", "stream"], choices=["memory", "stream"])
    p.add_argument("--out", type=Path, default=Path("runs.csv"))
    p.add_argument("overrides", nargs="*")
    p = sub.add_parser("report")
    p.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "export":
        export(args.idx, args.out, {"train": args.train, "test": args.test})
    elif args.command == "loader":
        torch.set_num_threads(1)
        for workers in args.workers:
            rate = loader_rate(args.root, workers, args.batches, args.batch_size)
            print(f"num_workers={workers}: {rate:.0f} samples/s ({args.batches} batches of {args.batch_size})", flush=True)
    elif args.command == "report":
        report(args.files)
    else:
        compare(args.root, args.seeds, args.epochs, args.storages, args.out, args.overrides)


if __name__ == "__main__":
    main()
