"""The ``bench.overhead --json`` files here -> runs.csv (one row per round and way) and the docs tables."""

import csv
import json
import statistics
import sys
from pathlib import Path

here = Path(__file__).parent
commits = dict(arg.split("=") for arg in sys.argv[1:])  # before=<commit> after=<commit> compile=<commit>
LABELS = ("before", "after", "compile", "quiet_before", "quiet_after", "quiet_nolog", "profile_before", "profile_after")
LABELS += ("quiet_lead_after", "quiet2_after", "quiet2_parts")  # reruns at load 1 and 2-3; parts: bench.overhead_parts


def results(label: str) -> list[dict]:
    path = here / f"{label}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


rows = []
for label in LABELS:
    for r in results(label):
        for i, rnd in enumerate(r["rounds"]):
            for way in rnd if label.endswith("parts") else ("plain", "bare", "framework"):
                rows.append(
                    {
                        "code": label, "commit": commits.get(label.removeprefix("quiet_"), ""), "task": r["task"],
                        "round": i, "way": way, "ms_per_step": rnd[way], "steps": r["steps"], "warmup": r["warmup"],
                        "seed": 0, "overrides": " ".join(r["overrides"]),
                        "recompiles_after_warmup": rnd.get("recompiles_after_warmup", ""),
                    }
                )  # fmt: skip
with open(here / "runs.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def summary(r: dict) -> tuple[float, ...]:
    """Medians: plain, bare, framework ms; and of the within-round framework - bare, framework / bare, bare - plain."""
    rounds = r["rounds"]
    fb = statistics.median(x["framework"] - x["bare"] for x in rounds)
    ratio = statistics.median(x["framework"] / x["bare"] for x in rounds)
    bp = statistics.median(x["bare"] - x["plain"] for x in rounds)
    return r["plain_ms"], r["bare_ms"], r["framework_ms"], fb, ratio, bp


for before, after in (("before", "after"), ("quiet_before", "quiet_after")):
    pairs = {r["task"]: [summary(r)] for r in results(before)}
    for r in results(after):
        pairs.setdefault(r["task"], []).append(summary(r))
    if not pairs:
        continue
    print(f"\n{before} -> {after}\n")
    print(
        "| recipe | plain ms | bare ms | framework ms (before -> after) | framework - bare (before -> after) "
        "| framework / bare (before -> after) | bare - plain (after) |"
    )
    print("|---|---|---|---|---|---|---|")
    for task, (b, a) in ((t, p) for t, p in pairs.items() if len(p) == 2):
        print(
            f"| {task} | {a[0]:.2f} | {a[1]:.2f} | {b[2]:.2f} -> {a[2]:.2f} | {b[3]:+.2f} -> **{a[3]:+.2f}** "
            f"| {b[4]:.3f} -> {a[4]:.3f} | {a[5]:+.2f} |"
        )
