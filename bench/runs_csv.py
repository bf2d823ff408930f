"""Per-run evidence of a sweep: one row per finished run, ``python -m bench.runs_csv <sweep folder> <out.csv>``.

The ``runs.csv`` that ``python -m recipes.results.report`` writes into the sweep, written to ``out.csv`` instead
(``recipes.results.report.write_runs``): the run folder, every override (seed included), fit seconds, every ``test/``
and ``sim/`` metric, and the commit (the run's ``commit.txt``, else ``--commit``, else ``git rev-parse HEAD``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recipes.results.report import read_sweep, write_runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--commit", default=None, help="the commit of runs without a commit.txt (default: HEAD)")
    args = parser.parse_args(argv)
    written = write_runs(read_sweep(args.sweep), args.sweep, args.out, args.commit)
    print(f"{len(written)} runs -> {args.out}")


if __name__ == "__main__":
    main()
