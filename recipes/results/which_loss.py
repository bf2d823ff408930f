"""Rank the losses of a ``which_loss`` sweep by their test metric: ``python -m recipes.results.which_loss <sweep>``.

``python train.py -m experiment=which_loss task=<task>`` leaves, in its sweep folder, ``which_loss.yaml`` (the task,
its metrics, the default loss of each slot, the best setting found for each loss) and one run per loss and seed
under ``final/<slot>/<loss>/seed<k>/``. This reads them back and writes ``which_loss.md``, ``which_loss.csv``,
``which_loss_runs.csv`` (every run) and ``which_loss_<slot>.png``: per slot, the losses ranked by the mean test
metric over seeds, with the sample std (ddof 1), a 95% t interval over seeds, and the paired difference to the
slot's default loss seed by seed (same seed, same data order and initialisation) with its 95% t interval; where that
interval covers 0 the seeds do not separate the two losses, nor do fewer than 3 paired seeds: "not distinguishable
at this size" (``recipes.results.paired``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from recipes.results.paired import Interval, paired, t_interval
from recipes.results.report import read_run, save_figure

MANIFEST = "which_loss.yaml"


@dataclass
class Entry:
    """One loss of one slot: its best setting, its test metric per seed, and the comparison with the default."""

    slot: str
    loss: str
    setting: dict = field(default_factory=dict)
    by_seed: dict[int, float] = field(default_factory=dict)
    failed: str = ""
    score: Interval | None = None
    paired: Interval | None = None
    verdict: str = ""


def read_entries(sweep: Path, manifest: dict) -> list[Entry]:
    """Every planned (slot, loss) with the test metric of each of its finished seed runs."""
    metric = manifest["test_metric"]
    entries = []
    for slot, names in manifest["slots"].items():
        for name in names:
            key = f"{slot}={name}"
            setting = dict(manifest.get("best", {}).get(key) or {})
            entry = Entry(slot, name, setting, failed=manifest.get("failed", {}).get(key, ""))
            for folder in sorted((sweep / "final" / slot / name).glob("seed*")):
                run = read_run(folder)
                if run is not None and metric in run.metrics:
                    entry.by_seed[int(run.overrides.get("seed", folder.name.removeprefix("seed")))] = run.metrics[metric]
            if not entry.by_seed and not entry.failed:
                entry.failed = "no finished run"
            entries.append(entry)
    return entries


def compare(entries: list[Entry], defaults: dict[str, str], mode: str) -> None:
    """Fill each entry's score, its paired difference to its slot's default (same seeds) and the verdict."""
    for entry in entries:
        if entry.by_seed:
            entry.score = t_interval(list(entry.by_seed.values()))
    for entry in entries:
        base = next((e for e in entries if e.slot == entry.slot and e.loss == defaults.get(entry.slot)), None)
        if entry.score is None:
            entry.verdict = "failed"
            continue
        if base is entry:
            entry.verdict = "default"
            continue
        comparison = paired(entry.by_seed, base.by_seed if base is not None else {})
        better = {"higher": "better", "lower": "worse"} if mode == "max" else {"higher": "worse", "lower": "better"}
        entry.paired, entry.verdict = comparison.interval, better.get(comparison.verdict, comparison.verdict)


def ranked(entries: list[Entry], mode: str) -> list[Entry]:
    """Per slot (in the manifest's order), the scored losses best first, then the failed ones."""
    slots = list(dict.fromkeys(e.slot for e in entries))
    sign = -1.0 if mode == "max" else 1.0
    out = []
    for slot in slots:
        mine = [e for e in entries if e.slot == slot]
        out += sorted((e for e in mine if e.score), key=lambda e: (sign * e.score.mean, e.loss))
        out += [e for e in mine if not e.score]
    return out


def number(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}" if math.isfinite(x) else "n/a"


def interval_text(i: Interval | None) -> str:
    return "" if i is None or not math.isfinite(i.low) else f"[{number(i.low)}, {number(i.high)}]"


def setting_text(setting: dict) -> str:
    return ", ".join(f"{k}={number(v) if isinstance(v, float) else v}" for k, v in setting.items()) or "defaults"


def write_markdown(entries: list[Entry], manifest: dict, out: Path) -> None:
    metric, mode = manifest["test_metric"], manifest["mode"]
    lines = [
        f"# Which loss for {manifest['task']}? Ranked by {metric} ({'higher' if mode == 'max' else 'lower'} is better)",
        "",
        f"Tuned on {manifest['metric']} ({manifest.get('trials', '?')} trials per loss), then the best setting retrained "
        f"with {manifest.get('seeds', '?')} seeds and tested. Mean ± std (ddof 1) over seeds, 95% t interval; Δ: the "
        "paired difference to the default loss, seed by seed, with its 95% t interval.",
    ]
    header = [
        "rank",
        "loss",
        "best setting",
        "seeds",
        f"{metric} mean ± std",
        "95% interval",
        "Δ vs default",
        "Δ 95% interval",
        "verdict",
    ]
    for slot in dict.fromkeys(e.slot for e in entries):
        lines += ["", f"## slot `{slot}` (default: {manifest['defaults'].get(slot)})", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        rank = 0
        for e in (e for e in entries if e.slot == slot):
            rank += 1 if e.score else 0
            if e.score is None:
                cells = ["", e.loss, setting_text(e.setting), "0", "", "", "", "", f"failed: {e.failed}"]
            else:
                delta = "" if e.paired is None else f"{e.paired.mean:+.4g}"
                score = f"{number(e.score.mean)} ± {e.score.std:.2g}"
                cells = [
                    str(rank),
                    e.loss,
                    setting_text(e.setting),
                    str(e.score.n),
                    score,
                    interval_text(e.score),
                    delta,
                    interval_text(e.paired),
                    e.verdict,
                ]
            lines.append("| " + " | ".join(cells) + " |")
    (out / "which_loss.md").write_text("\n".join(lines) + "\n")


COLUMNS = [
    "slot",
    "loss",
    "setting",
    "seeds",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "delta_mean",
    "delta_std",
    "delta_low",
    "delta_high",
    "verdict",
    "failed",
]


def summary_rows(entries: list[Entry]) -> list[list]:
    """One row per ranked loss, in ``COLUMNS`` order: what ``which_loss.csv`` and the W&B table hold."""
    rows = []
    for e in entries:
        s, p = e.score, e.paired
        cells = [e.slot, e.loss, setting_text(e.setting), s.n if s else 0]
        cells += [s.mean, s.std, s.low, s.high] if s else [""] * 4
        cells += [p.mean, p.std, p.low, p.high] if p else [""] * 4
        rows.append([*cells, e.verdict, e.failed])
    return rows


def write_csv(entries: list[Entry], out: Path) -> None:
    with open(out / "which_loss.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(summary_rows(entries))


def run_rows(sweep: Path) -> list[dict]:
    """Every tuning trial and seed run below the sweep: phase, slot, loss, folder, seed, overrides, the validation
    and test metrics, fit seconds (the per-run evidence behind the ranking)."""
    rows = []
    for phase in ("tune", "final"):
        folders = [f for f in (sweep / phase).glob("*/*/*") if f.is_dir()]
        for folder in sorted(folders, key=lambda f: (f.parent.parent.name, f.parent.name, len(f.name), f.name)):
            run = read_run(folder)
            if run is None:
                continue
            config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text()) or {}
            timing = folder / "timing.json"
            row = {
                "phase": phase,
                "slot": folder.parent.parent.name,
                "loss": folder.parent.name,
                "run": folder.name,
                "seed": config.get("seed", ""),
                "overrides": " ".join(f"{k}={v}" for k, v in run.overrides.items()),
                "fit_seconds": json.loads(timing.read_text()).get("fit_seconds", "") if timing.exists() else "",
            }
            row.update({k: v for k, v in sorted(run.metrics.items()) if k.startswith(("val/", "test/"))})
            rows.append(row)
    return rows


def write_runs(sweep: Path) -> list[dict]:
    rows = run_rows(sweep)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(sweep / "which_loss_runs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def plot(entries: list[Entry], manifest: dict, out: Path) -> list[Path]:
    """Per slot: the ranked means with their 95% intervals, and the paired differences to the default."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for slot in dict.fromkeys(e.slot for e in entries):
        scored = [e for e in entries if e.slot == slot and e.score]
        if not scored:
            continue
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 0.45 * len(scored) + 1.6), sharey=True)
        rows = range(len(scored))
        for ax, values in ((left, [e.score for e in scored]), (right, [e.paired for e in scored])):
            for y, i in zip(rows, values):
                if i is None:
                    continue
                half = (i.high - i.low) / 2 if math.isfinite(i.low) else 0.0
                ax.errorbar(i.mean, y, xerr=half, fmt="o", capsize=3, color="C0")
            ax.grid(alpha=0.3)
        right.axvline(0.0, color="0.4", lw=1)
        left.set_yticks(list(rows), [e.loss for e in scored])
        left.invert_yaxis()
        left.set_xlabel(f"{manifest['test_metric']} (mean, 95% interval)")
        right.set_xlabel(f"paired Δ vs {manifest['defaults'].get(slot)}")
        fig.suptitle(f"{manifest['task']}: slot {slot}", fontsize=10)
        written.append(save_figure(fig, out / f"which_loss_{slot}.png"))
    return written


def report(sweep: Path) -> dict:
    """Write the ranking of a which_loss sweep folder; returns the ranked entries and the files written."""
    path = sweep / MANIFEST
    if not path.exists():
        raise SystemExit(f"which_loss: {path} is missing; run `python train.py -m experiment=which_loss task=<task>` first")
    manifest = yaml.safe_load(path.read_text())
    entries = read_entries(sweep, manifest)
    compare(entries, manifest["defaults"], manifest["mode"])
    entries = ranked(entries, manifest["mode"])
    write_markdown(entries, manifest, sweep)
    write_csv(entries, sweep)
    runs = write_runs(sweep)
    plots = plot(entries, manifest, sweep)
    return {"entries": entries, "plots": plots, "manifest": manifest, "runs": runs}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="the sweep folder of `python train.py -m experiment=which_loss`")
    args = parser.parse_args(argv)
    result = report(args.sweep)
    print((args.sweep / "which_loss.md").read_text())
    return result


if __name__ == "__main__":
    main()
