"""Test MAE, RMSE and interval coverage of every regression loss on one dataset, over seeds, as a Markdown table.

    python -m bench.regression_losses                                   # the outlier set, seed 0
    python -m bench.regression_losses --seeds 0,1,2 --overrides data=diabetes data.target_scaling=scale
    python -m bench.regression_losses --references-only --overrides data=counts   # the reference rows alone

Each run is ``train.py task=regression loss=<name> seed=<s>`` plus the overrides (CSV logger, run folders
under a temporary directory). Two reference rows come from the data alone: the training mean as the
prediction, and (on the synthetic sets) the true conditional mean f(x). Runs on one thread, sequentially.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("test/mae", "test/rmse", "test/coverage", "test/interval_width")


def compose(overrides: list[str], output_dir: Path):
    """The config train.py would compose, writing under ``output_dir``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
        del cfg.hydra
    return cfg


def reference_rows(cfg) -> dict[str, dict[str, float]]:
    """MAE and RMSE on the test split of the training mean and, for synthetic data, of the true mean f(x)."""
    import hydra

    from recipes.data.tabular import count_log_rate, heteroscedastic_mean

    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    x, y = dm.splits["test"]
    rows = {"training mean (reference)": dm.splits["train"][1].mean().expand_as(y)}
    raw_x = x.double() * dm.feature_std + dm.feature_mean
    truth = {"heteroscedastic": heteroscedastic_mean, "counts": lambda v: count_log_rate(v).exp()}.get(dm.dataset)
    if truth is not None:
        rows["true f(x) (reference)"] = ((truth(raw_x) - dm.target_mean) / dm.target_std).float()
    return {
        name: {"test/mae": float((p - y).abs().mean()), "test/rmse": float((p - y).square().mean().sqrt())}
        for name, p in rows.items()
    }


def fmt(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--losses", default=None, help="comma-separated; default: every regression loss")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--overrides", nargs="*", default=["data=heteroscedastic"])
    parser.add_argument("--references-only", action="store_true", help="print the reference rows alone (no training)")
    args = parser.parse_args(argv)

    os.environ.setdefault("WANDB_MODE", "offline")
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    import losses
    from train import train

    names = [] if args.references_only else args.losses.split(",") if args.losses else losses.available("regression")
    seeds = [int(s) for s in args.seeds.split(",")]
    quiet = ["logger=csv", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "task=regression"]
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = compose([*quiet, *args.overrides], Path(tmp) / "ref")
        for name in names:
            for seed in seeds:
                start = time.time()
                cfg = compose([*quiet, *args.overrides, f"loss={name}", f"seed={seed}"], Path(tmp) / f"{name}-{seed}")
                metrics = train(cfg)
                metrics["seconds"] = time.time() - start
                results.setdefault(name, []).append(metrics)
                print(f"# {name} seed {seed}: " + ", ".join(f"{k}={metrics.get(k, math.nan):.4f}" for k in METRICS), flush=True)
        references = reference_rows(base)

    print(f"\noverrides: {' '.join(args.overrides)}; seeds {args.seeds}; mean ± std over seeds\n")
    print("| loss | test MAE | test RMSE | coverage | interval width | s/run |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        cells = [fmt([r.get(k, math.nan) for r in runs]) for k in METRICS]
        print(f"| {name} | " + " | ".join(cells) + f" | {statistics.mean(r['seconds'] for r in runs):.0f} |")
    for name, row in references.items():
        print(f"| {name} | {row['test/mae']:.3f} | {row['test/rmse']:.3f} | - | - | - |")


if __name__ == "__main__":
    main()
