"""Add each run's selection score to a runs.csv: the best ``val/map`` of its metrics.csv (the epoch its best.ckpt,
the checkpoint it was tested with, comes from). ``python docs/evidence/l1_weight_cpu/best_val_map.py <sweep> <runs.csv>``."""

import sys
from pathlib import Path

import pandas as pd

sweep, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = pd.read_csv(out, dtype=str)
best = {}
for metrics in sorted(sweep.glob("*/*/csv/metrics.csv")) + sorted(sweep.glob("*/csv/metrics.csv")):
    run = metrics.parent.parent
    best[str(run.relative_to(sweep))] = pd.read_csv(metrics)["val/map"].max()
runs["val/map_best"] = [f"{best[r]:.6f}" for r in runs["run"]]
runs.to_csv(out, index=False)
print(f"{len(runs)} runs: val/map_best added -> {out}")
