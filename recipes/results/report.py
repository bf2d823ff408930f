"""Turn a sweep folder into a table and plots: ``python -m recipes.results.report logs/<task>/multiruns/<date>``.

Reads what every run wrote to disk (``.hydra/overrides.yaml``, ``.hydra/config.yaml``, ``csv/metrics.csv`` or a
simulation run's ``metrics.json``, ``tags.log`` for a ``tags`` column), so it works with W&B offline or off. Runs that
differ only in ``seed`` are grouped and reported as mean ± std, rows in the order of the swept values. Writes
``report.md``, ``report.csv`` and one ``report_<param>.png`` per swept hyperparameter (one line per combination of the
other axes) into the sweep folder, and prints the best point. Several sweep folders under one parent
(e.g. one per seed, run in parallel) are read together when the parent is given.

Per-run evidence: ``runs.csv``, one row per run with test or simulation metrics (its folder, overrides, seed, fit
seconds from ``timing.json``, every ``test/`` and ``sim/`` metric, the commit from ``commit.txt``, else ``--commit``,
else ``git rev-parse --short HEAD``; ``python -m bench.runs_csv <sweep> <out.csv>`` writes it elsewhere). A folder
that holds only a ``runs.csv`` (``docs/evidence/<name>/``) is read from it, and then only the paired tables are
written, unless ``--tables`` asks for ``report.md`` / ``report.csv`` / plots of its ``test/`` metrics too.
``--baseline KEY=VALUE`` compares every other point with the point where KEY=VALUE (the other axes held
fixed; default: the experiment config's ``report.baseline``, used where the runs hold it), ``--pair METRIC=METRIC``
two metrics of the same run (e.g. ``test/acc=test/baseline_acc``); both paired by seed, in ``paired.md`` /
``paired.csv`` (``recipes.results.paired``: mean ± std of the differences, 95% t interval, "not distinguishable at
this size").
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from recipes.results.paired import Paired, paired

SEED_KEY = "seed"
RUNS = "runs.csv"
META = ("run", "fit_seconds", "commit")
REPORTED = ("test/", "sim/")  # the metrics of runs.csv and of the paired comparisons


@dataclass
class Run:
    """One job of a sweep: its overrides (as ``key=value``), final metrics and chosen metric."""

    folder: Path
    overrides: dict[str, str]
    metrics: dict[str, float]
    optimized_metric: str | None
    mode: str
    tags: tuple[str, ...] = ()
    fit_seconds: float | None = None
    commit: str = ""

    @property
    def seed(self) -> int:
        return int(self.overrides.get(SEED_KEY, 0))


def final_metrics(metrics_csv: Path) -> dict[str, float]:
    """The last value logged for every column of a Lightning ``metrics.csv``."""
    last: dict[str, float] = {}
    with open(metrics_csv) as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if value not in ("", None) and key not in ("epoch", "step"):
                    last[key] = float(value)
    return last


def read_run(folder: Path) -> Run | None:
    """A run from its folder, or None when it has no metrics (a crashed or unfinished job); a simulation run's
    metrics are its ``metrics.json``."""
    metrics_csv, metrics_json = folder / "csv" / "metrics.csv", folder / "metrics.json"
    overrides_file = folder / ".hydra" / "overrides.yaml"
    if not (metrics_csv.exists() or metrics_json.exists()) or not overrides_file.exists():
        return None
    overrides = {}
    for item in yaml.safe_load(overrides_file.read_text()) or []:
        key, _, value = str(item).partition("=")
        overrides[key.lstrip("+~")] = value
    config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text()) or {}
    mode = (config.get("monitor") or {}).get("mode", "max")
    timing = folder / "timing.json"
    seconds = json.loads(timing.read_text()).get("fit_seconds") if timing.exists() else None
    commit = (folder / "commit.txt").read_text().strip() if (folder / "commit.txt").exists() else ""
    metrics = final_metrics(metrics_csv) if metrics_csv.exists() else json.loads(metrics_json.read_text())
    return Run(folder, overrides, metrics, config.get("optimized_metric"), mode, read_tags(folder), seconds, commit)


def read_tags(folder: Path) -> tuple[str, ...]:
    """The run's tags from its ``tags.log`` (one a line, written by the run), or none."""
    path = folder / "tags.log"
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip()) if path.exists() else ()


def read_sweep(sweep: Path) -> list[Run]:
    """Every finished run below a sweep folder, in job order."""
    runs = [read_run(p.parent.parent) for p in sorted(sweep.rglob(".hydra/overrides.yaml"))]
    return [r for r in runs if r is not None]


def is_metric(column: str) -> bool:
    return column.startswith(("val/", *REPORTED))


def read_runs_csv(path: Path) -> list[Run]:
    """The runs of an evidence folder from its ``runs.csv`` (empty cells: a metric the run did not log)."""
    runs = []
    with open(path) as f:
        for row in csv.DictReader(f):
            metrics = {k: float(v) for k, v in row.items() if is_metric(k) and v not in ("", None)}
            overrides = {k: v for k, v in row.items() if not is_metric(k) and k not in META}
            seconds = float(row["fit_seconds"]) if row.get("fit_seconds") else None
            runs.append(Run(path.parent / row["run"], overrides, metrics, None, "max", (), seconds, row.get("commit", "")))
    return runs


def head_commit() -> str:
    """``git rev-parse --short HEAD`` where the command runs, or "" outside a git checkout."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def write_runs(runs: list[Run], sweep: Path, path: Path | None = None, commit: str | None = None) -> list[Run]:
    """``runs.csv`` (``path``, default in the sweep): one row per run with test or simulation metrics, its folder,
    overrides, fit seconds, every ``test/`` and ``sim/`` metric and its commit (``commit.txt``, else ``commit``,
    else HEAD); returns the runs written."""
    runs = [r for r in runs if any(m.startswith(REPORTED) for m in r.metrics)]  # not one still training
    if commit is None and not all(r.commit for r in runs):
        commit = head_commit()
    keys = sorted({k for r in runs for k in r.overrides})
    reported = sorted({m for r in runs for m in r.metrics if m.startswith(REPORTED)})
    path = path or sweep / RUNS
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", *keys, "fit_seconds", *reported, "commit"])
        for r in runs:
            seconds = "" if r.fit_seconds is None else f"{r.fit_seconds:.1f}"
            cells = [r.folder.relative_to(sweep).as_posix(), *(r.overrides.get(k, "") for k in keys), seconds]
            values = (f"{r.metrics[m]:.7g}" if m in r.metrics else "" for m in reported)
            writer.writerow([*cells, *values, r.commit or commit])
    return runs


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose values differ between runs (the sweep's axes)."""
    values: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        for key, value in run.overrides.items():
            values[key].add(value)
    return sorted(k for k, v in values.items() if len(v) > 1 or any(k not in r.overrides for r in runs))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def group(runs: list[Run], axes: list[str]) -> list[dict]:
    """One row per point of the sweep (all axes but the seed): mean and std of every metric over seeds."""
    points: dict[tuple, list[Run]] = defaultdict(list)
    params = [a for a in axes if a != SEED_KEY]
    for run in runs:
        points[tuple(run.overrides.get(a, "") for a in params)].append(run)
    rows = []
    for key, members in points.items():
        row: dict = dict(zip(params, key))
        row["seeds"] = len(members)
        row["tags"] = ",".join(dict.fromkeys(t for r in members for t in r.tags))  # in order, each once
        names = sorted({m for r in members for m in r.metrics})
        for name in names:
            values = [r.metrics[name] for r in members if name in r.metrics]
            row[name] = mean_std(values)
        rows.append(row)
    return sorted(rows, key=lambda row: [sort_key(row[p]) for p in params])


def sort_key(value: str) -> tuple:
    """Numbers in numeric order before words in alphabetical order (so "2" < "10", and "g05" < "g1")."""
    number = as_number(value)
    return (0, number, "") if number is not None else (1, 0.0, value)


def best_row(rows: list[dict], metric: str, mode: str) -> dict | None:
    """The point with the best mean of ``metric`` (max or min)."""
    scored = [r for r in rows if metric in r]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r[metric][0])


def fmt(value) -> str:
    if isinstance(value, tuple):
        mean, std = value
        return f"{mean:.4g} ± {std:.2g}"
    return str(value)


def write_tables(rows: list[dict], params: list[str], metrics: list[str], out: Path) -> None:
    """``report.md`` (mean ± std) and ``report.csv`` (separate mean and std columns); a ``tags`` column when runs have tags."""
    tags = ["tags"] if any(row["tags"] for row in rows) else []
    header = [*params, "seeds", *tags, *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(h, "")) for h in header) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    with open(out / "report.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*params, "seeds", *tags, *(f"{m}_{s}" for m in metrics for s in ("mean", "std"))])
        for row in rows:
            cells = [row.get(p, "") for p in params] + [row["seeds"]] + [row[t] for t in tags]
            for m in metrics:
                cells += list(row.get(m, ("", "")))
            writer.writerow(cells)


def as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def plot(rows: list[dict], params: list[str], metric: str, out: Path) -> list[Path]:
    """``metric`` (mean ± std over seeds) against each swept hyperparameter, one PNG each.

    With several swept axes, each line holds the other axes fixed (one line per combination, labelled);
    a non-numeric axis (a loss name, a config choice) is drawn at evenly spaced, labelled positions.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    scored = [r for r in rows if metric in r]
    for param in params:
        values = sorted({r[param] for r in scored}, key=sort_key)
        if len(values) < 2:
            continue
        numeric = all(as_number(v) is not None for v in values)
        position = {v: (as_number(v) if numeric else i) for i, v in enumerate(values)}
        others = [p for p in params if p != param]
        lines: dict[tuple, list[dict]] = defaultdict(list)
        for row in scored:
            lines[tuple(row[p] for p in others)].append(row)
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for key in sorted(lines, key=lambda k: [sort_key(v) for v in k]):
            points = sorted(lines[key], key=lambda r: position[r[param]])
            label = ", ".join(f"{p}={v}" for p, v in zip(others, key)) or None
            ax.errorbar(
                [position[r[param]] for r in points],
                [r[metric][0] for r in points],
                yerr=[r[metric][1] for r in points],
                marker="o",
                capsize=3,
                label=label,
            )
        if not numeric:
            ax.set_xticks(range(len(values)), values, rotation=20)
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if others:
            ax.legend(fontsize=7)
        written.append(save_figure(fig, out / f"report_{param.replace('/', '_')}.png"))
    return written


def save_figure(fig, path: Path) -> Path:
    """Lay out, write at 120 dpi and close a matplotlib figure; returns its path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def key_values(items: list[str], flag: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` as ``{"a": "1", "b": "x"}``; anything without ``=`` is refused naming the flag."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"report: {flag} needs KEY=VALUE (got {item!r}), e.g. {flag} box_loss=giou")
        out[key] = value
    return out


@dataclass
class Comparison:
    """One paired comparison of the report: a point's metric against its baseline, seed by seed."""

    point: str
    metric: str
    baseline: str
    result: Paired


def by_seed(runs: list[Run], metric: str) -> dict[int, float]:
    return {r.seed: r.metrics[metric] for r in runs if metric in r.metrics}


def point_text(point: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "(all runs)"


def compare_points(
    runs: list[Run], params: list[str], baseline: dict[str, str], pairs: list[tuple[str, str]], strict: bool = True
) -> list[Comparison]:
    """Every point against its baseline point (``baseline`` swapped in, other axes fixed), and each ``pairs``
    metric against its partner in the same runs; test and simulation metrics only, in the rows' order.

    A baseline key that is not swept, or a point whose baseline point has no runs, is refused; with ``strict`` off
    (the configured ``report.baseline`` on a partial sweep) it is left out, and said so."""
    unknown = sorted(set(baseline) - set(params))
    if unknown and strict:
        raise SystemExit(f"report: --baseline {unknown[0]} is not a swept key; the swept keys are {', '.join(params)}")
    if unknown:
        print(f"report: report.baseline {', '.join(unknown)} not swept in these runs; no paired comparison with it")
        baseline = {k: v for k, v in baseline.items() if k not in unknown}
    points: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        points[tuple(run.overrides.get(p, "") for p in params)].append(run)
    order = sorted(points, key=lambda key: [sort_key(v) for v in key])
    tested = sorted({m for r in runs for m in r.metrics if m.startswith(REPORTED)})
    out = []
    for key in order:
        point = dict(zip(params, key))
        for metric, other in pairs:
            result = paired(by_seed(points[key], metric), by_seed(points[key], other))
            out.append(Comparison(point_text(point), metric, other, result))
        if not baseline:
            continue
        base_key = tuple(baseline.get(p, v) for p, v in zip(params, key))
        if base_key == key:
            continue
        if base_key not in points and not strict:
            print(f"report: no runs at the baseline {point_text(dict(zip(params, base_key)))}; {point_text(point)} unpaired")
            continue
        if base_key not in points:
            raise SystemExit(f"report: no runs at the baseline {point_text(dict(zip(params, base_key)))}")
        for metric in tested:
            result = paired(by_seed(points[key], metric), by_seed(points[base_key], metric))
            out.append(Comparison(point_text(point), metric, point_text(baseline), result))
    return out


def write_paired(comparisons: list[Comparison], out: Path) -> None:
    """``paired.md`` and ``paired.csv``: per comparison the paired differences by seed, their mean ± std, the 95%
    t interval and the verdict."""
    header = ["point", "metric", "baseline", "seeds", "Δ mean ± std", "Δ 95% interval", "Δ per seed", "verdict", "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    with open(out / "paired.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "point",
                "metric",
                "baseline",
                "seeds",
                "delta_mean",
                "delta_std",
                "delta_low",
                "delta_high",
                "deltas",
                "verdict",
                "note",
            ]
        )
        for c in comparisons:
            i, d = c.result.interval, c.result.differences
            per_seed = " ".join(f"{s}:{v:+.4g}" for s, v in d.items())
            bounds = f"[{i.low:+.4g}, {i.high:+.4g}]" if i is not None and math.isfinite(i.low) else ""
            cells = [
                c.point,
                c.metric,
                c.baseline,
                str(len(d)),
                f"{i.mean:+.4g} ± {i.std:.2g}" if i else "",
                bounds,
                per_seed,
                c.result.verdict,
                c.result.note,
            ]
            lines.append("| " + " | ".join(cells) + " |")
            numbers = [i.mean, i.std, i.low, i.high] if i else [""] * 4
            writer.writerow([c.point, c.metric, c.baseline, len(d), *numbers, per_seed, c.result.verdict, c.result.note])
    (out / "paired.md").write_text("\n".join(lines) + "\n")


def report(
    sweep: Path,
    metric: str | None = None,
    baseline: dict | None = None,
    pairs: list[tuple[str, str]] | None = None,
    commit: str | None = None,
    tables: bool = False,
) -> dict:
    """Write the tables, plots, ``runs.csv`` and paired comparisons for a sweep folder; returns the rows and the best
    point. A folder with only a ``runs.csv`` gets only its paired comparisons, and its tables and plots if ``tables``."""
    runs = read_sweep(sweep)
    from_evidence = not runs and (sweep / RUNS).exists()
    if from_evidence:
        runs = read_runs_csv(sweep / RUNS)
    if not runs:
        raise SystemExit(f"report: no finished runs (csv/metrics.csv or metrics.json + .hydra/, or {RUNS}) under {sweep}")
    strict = baseline is not None  # a --baseline must match the runs; report.baseline only where it does
    baseline = baseline if strict else key_values(configured_baseline(runs), "report.baseline")
    axes = swept_keys(runs)
    params = [a for a in axes if a != SEED_KEY]
    rows = group(runs, axes)
    metric = metric or runs[0].optimized_metric or "val/acc"
    comparisons = compare_points(runs, params, baseline, pairs or [], strict)
    if comparisons:
        write_paired(comparisons, sweep)
    result = {"rows": rows, "params": params, "metric": metric, "runs": len(runs), "comparisons": comparisons}
    if from_evidence and not tables:
        return result | {"best": best_row(rows, metric, "max"), "plots": []}
    metrics = sorted({m for r in runs for m in r.metrics if is_metric(m)})
    if from_evidence and metric not in metrics:
        raise SystemExit(f"report: --metric {metric} is not in {sweep / RUNS}; its metrics are {', '.join(metrics)}")
    write_tables(rows, params, metrics, sweep)
    if not from_evidence:
        write_runs(runs, sweep, commit=commit)
    plots = plot(rows, params, metric, sweep)
    return result | {"best": best_row(rows, metric, runs[0].mode), "plots": plots}


def configured_baseline(runs: list[Run]) -> list[str]:
    """``report.baseline`` (``KEY=VALUE`` or a list of them) from the first run's config, or none."""
    config_file = runs[0].folder / ".hydra" / "config.yaml"
    config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.exists() else {}
    value = (config.get("report") or {}).get("baseline") or []
    return [value] if isinstance(value, str) else list(value)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="a multirun folder (holds one folder per job)")
    parser.add_argument("--metric", help="the metric to rank and plot (default: the runs' optimized_metric)")
    parser.add_argument(
        "--baseline",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="compare every point with this one, paired by seed (default: report.baseline)",
    )
    parser.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="METRIC=METRIC",
        help="compare two metrics of the same runs, paired by seed (e.g. test/acc=test/baseline_acc)",
    )
    parser.add_argument("--commit", help="runs.csv's commit for runs without a commit.txt (default: HEAD)")
    parser.add_argument("--tables", action="store_true", help="from an evidence folder's runs.csv: report.md/.csv and plots too")
    args = parser.parse_args(argv)
    baseline = None if args.baseline is None else key_values(args.baseline, "--baseline")
    pairs = [pair for item in args.pair for pair in key_values([item], "--pair").items()]  # one metric may pair twice
    result = report(args.sweep, args.metric, baseline, pairs, args.commit, args.tables)
    for name in ("report.md", "paired.md"):
        if (args.sweep / name).exists():
            print((args.sweep / name).read_text())
    best = result["best"]
    if best is not None:
        point = ", ".join(f"{p}={best[p]}" for p in result["params"]) or "(single point)"
        print(f"best {result['metric']}: {fmt(best[result['metric']])} at {point} over {best['seeds']} seed(s)")
    return result


if __name__ == "__main__":
    main()
