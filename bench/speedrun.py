"""Fashion-MNIST to 93% test accuracy: seconds of training per seed, mean and spread (airbench-style).

    python -m bench.speedrun [--seeds 0 1 2] [overrides ...]

Runs ``experiment=fashion_speedrun`` through ``train.py``'s ``train`` once per seed and reports each
run's fit time (from ``timing.json``, GPU synchronised), its test accuracy, and whether it reached
the target. The fixed epoch budget is the schedule; the time includes Lightning and validation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench.common import compose_config

TARGET = 0.93


def run_seed(seed: int, overrides: list[str]) -> dict:
    """Train one seed and return its fit seconds and test accuracy."""
    from train import train

    out = tempfile.mkdtemp(prefix=f"speedrun-{seed}-")
    cfg = compose_config(["experiment=fashion_speedrun", f"seed={seed}", *overrides], output_dir=out)
    metrics = train(cfg)
    timing = json.loads((Path(out) / "timing.json").read_text())
    return {"seed": seed, "fit_seconds": timing["fit_seconds"], "epochs": timing["epochs"], "test_acc": metrics["test/acc"]}


def summarize(runs: list[dict]) -> dict:
    """Mean and standard deviation over seeds of time and accuracy."""
    times = [r["fit_seconds"] for r in runs]
    accs = [r["test_acc"] for r in runs]
    spread = statistics.stdev if len(runs) > 1 else (lambda _: 0.0)
    return {
        "runs": runs,
        "fit_seconds_mean": statistics.mean(times),
        "fit_seconds_std": spread(times),
        "test_acc_mean": statistics.mean(accs),
        "test_acc_std": spread(accs),
        "target": TARGET,
        "reached_target": all(a >= TARGET for a in accs),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides on top of experiment=fashion_speedrun")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_intermixed_args(argv)
    result = summarize([run_seed(seed, args.overrides) for seed in args.seeds])
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
