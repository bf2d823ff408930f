"""One training epoch through ``train.py``'s ``train``: fit seconds, training samples/s and peak GPU memory.

    python -m bench.one_epoch task=detection model=fcos trainer=gpu [overrides ...]

Samples/s is the epoch's steps times the batch size over the fit seconds (``timing.json``, GPU synchronised;
one validation pass and Lightning's start-up of ``fit`` included); peak memory is
``torch.cuda.max_memory_allocated`` over fit and test. The test metrics are printed too.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from bench.common import compose_config


def run(overrides: list[str]) -> dict:
    """Train and test one epoch of the configured run; its timing, throughput, peak memory and test metrics."""
    from train import train

    out = tempfile.mkdtemp(prefix="one-epoch-")
    cfg = compose_config(["trainer.max_epochs=1", "logger=csv", *overrides], output_dir=out)
    cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("gpu", "cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    metrics = train(cfg)
    timing = json.loads((Path(out) / "timing.json").read_text())
    return {
        "overrides": overrides,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "fit_seconds": round(timing["fit_seconds"], 3),
        "steps": timing["steps"],
        "train_samples_per_s": round(timing["steps"] * cfg.data.batch_size / timing["fit_seconds"], 1),
        "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else 0.0,
        "test": {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. task=detection model=fcos trainer=gpu")
    args = parser.parse_intermixed_args(argv)
    result = run(args.overrides)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
