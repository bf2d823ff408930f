"""before/after/compile.jsonl (``bench.overhead --json``) -> runs.csv (one row per round and way), the docs table."""

import csv
import json
import statistics
import sys
from pathlib import Path

here = Path(__file__).parent
commits = dict(arg.split("=") for arg in sys.argv[1:])  # before=<commit> after=<commit>
rows, table = [], {}
for label in ("before", "after", "compile"):
    for line in (here / f"{label}.jsonl").read_text().splitlines():
        r = json.loads(line)
        for i, rnd in enumerate(r["rounds"]):
            for way in ("plain", "bare", "framework"):
                rows.append(
                    {
                        "code": label,
                        "commit": commits.get(label, ""),
                        "recompiles_after_warmup": rnd.get("recompiles_after_warmup", ""),
                        "task": r["task"],
                        "round": i,
                        "way": way,
                        "ms_per_step": rnd[way],
                        "steps": r["steps"],
                        "warmup": r["warmup"],
                        "seed": 0,
                        "overrides": " ".join(r["overrides"]),
                    }
                )
        if label == "compile":
            continue
        fb = statistics.median(x["framework"] - x["bare"] for x in r["rounds"])
        bp = statistics.median(x["bare"] - x["plain"] for x in r["rounds"])
        ratio = statistics.median(x["framework"] / x["bare"] for x in r["rounds"])
        table.setdefault(r["task"], {})[label] = (r["plain_ms"], r["bare_ms"], r["framework_ms"], fb, bp, ratio)
with open(here / "runs.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
print(
    "| recipe | plain ms | bare ms | framework ms (before -> after) | framework - bare (before -> after) "
    "| framework / bare (before -> after) | bare - plain (after) |"
)
print("|---|---|---|---|---|---|---|")
for task, t in table.items():
    b, a = t["before"], t["after"]
    print(
        f"| {task} | {a[0]:.2f} | {a[1]:.2f} | {b[2]:.2f} -> {a[2]:.2f} | {b[3]:+.2f} -> **{a[3]:+.2f}** "
        f"| {b[5]:.3f} -> {a[5]:.3f} | {a[4]:+.2f} |"
    )
