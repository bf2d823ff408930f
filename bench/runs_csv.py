"""Per-run evidence of a sweep: one row per finished run, ``python -m bench.runs_csv <sweep folder> <out.csv>``.

Columns: the run folder, every override (seed included), fit seconds (``timing.json``), every ``test/`` and
``sim/`` metric the run logged last, and the commit the code was at (``--commit``, default ``git rev-parse HEAD``).
Reads runs as ``recipes.results.report`` does; a simulation run (no ``csv/metrics.csv``) from its ``metrics.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
from pathlib import Path

import yaml

from recipes.results.report import final_metrics

REPORTED = ("test/", "sim/")


def run_row(folder: Path, sweep: Path) -> dict[str, object] | None:
    """The row of one run folder, or None when it has no test (or simulation) metrics yet."""
    overrides_file = folder / ".hydra" / "overrides.yaml"
    metrics_csv, metrics_json = folder / "csv" / "metrics.csv", folder / "metrics.json"
    if not overrides_file.exists() or not (metrics_csv.exists() or metrics_json.exists()):
        return None
    metrics = final_metrics(metrics_csv) if metrics_csv.exists() else json.loads(metrics_json.read_text())
    if not any(k.startswith(REPORTED) for k in metrics):  # still training, or it stopped before testing
        return None
    row: dict[str, object] = {"run": str(folder.relative_to(sweep))}
    for item in yaml.safe_load(overrides_file.read_text()) or []:
        key, _, value = str(item).partition("=")
        row[key.lstrip("+~")] = value
    timing = folder / "timing.json"
    row["fit_seconds"] = round(json.loads(timing.read_text())["fit_seconds"], 1) if timing.exists() else ""
    row.update({k: round(v, 6) for k, v in sorted(metrics.items()) if k.startswith(REPORTED)})
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--commit", default=None, help="the commit the runs were made at (default: HEAD)")
    args = parser.parse_args(argv)
    commit = args.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    folders = sorted({p.parent.parent for p in args.sweep.rglob(".hydra/overrides.yaml")})
    rows = [row for folder in folders if (row := run_row(folder, args.sweep)) is not None]
    columns = list(dict.fromkeys(key for row in rows for key in row)) + ["commit"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({**row, "commit": commit} for row in rows)
    print(f"{len(rows)} runs -> {args.out}")


if __name__ == "__main__":
    main()
