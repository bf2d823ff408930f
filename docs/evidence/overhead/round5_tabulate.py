"""Round 5's ``bench.overhead`` / ``bench.overhead_parts`` JSON lines -> round5_runs.csv and the docs tables.

python docs/evidence/overhead/round5_tabulate.py before=<commit> after=<commit>
"""

import csv
import json
import statistics
import sys
from pathlib import Path

here = Path(__file__).parent
commits = dict(arg.split("=") for arg in sys.argv[1:])
SIDES = ("before", "after")
OVERHEAD_WAYS = ("plain", "bare", "framework")


def results(source: str, side: str) -> list[dict]:
    path = here / f"round5_{source}_{side}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


rows = []
for source in ("overhead", "parts"):
    for side in SIDES:
        counts: dict[str, int] = {}
        for r in results(source, side):
            for rnd in r["rounds"]:
                i = counts[r["task"]] = counts.get(r["task"], -1) + 1
                for way, ms in rnd.items():
                    if source == "overhead" and way not in OVERHEAD_WAYS:
                        continue
                    rows.append(
                        {
                            "source": source, "code": f"round5_{side}", "commit": commits.get(side, ""),
                            "task": r["task"], "round": i, "way": way, "ms_per_step": ms, "steps": r["steps"],
                            "warmup": r["warmup"], "seed": 0, "overrides": " ".join(r["overrides"]),
                        }
                    )  # fmt: skip
ab = (
    [json.loads(line) for line in (here / "round5_ab.jsonl").read_text().splitlines()]
    if (here / "round5_ab.jsonl").exists()
    else []
)
for r in ab:
    for i, rnd in enumerate(r["rounds"]):
        for way, ms in rnd.items():
            rows.append(
                {
                    "source": "ab", "code": "round5_ab", "commit": commits.get("after", ""), "task": r["task"], "round": i,
                    "way": way, "ms_per_step": ms, "steps": r["steps"], "warmup": r["warmup"], "seed": 0,
                    "overrides": " ".join(r["overrides"]),
                }
            )  # fmt: skip
with open(here / "round5_runs.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def of(source: str, side: str, task: str, way: str) -> list[float]:
    return [
        r["ms_per_step"] for r in rows if (r["source"], r["code"], r["task"], r["way"]) == (source, f"round5_{side}", task, way)
    ]


def minus(source: str, side: str, task: str, way: str) -> float:
    return statistics.median(a - b for a, b in zip(of(source, side, task, way), of(source, side, task, "bare"), strict=True))


def over(source: str, side: str, task: str, way: str) -> float:
    return statistics.median(a / b for a, b in zip(of(source, side, task, way), of(source, side, task, "bare"), strict=True))


tasks = list(dict.fromkeys(r["task"] for r in rows if r["source"] == "overhead"))
print("| recipe | rounds | bare ms (after) | framework - bare (before -> after) | framework / bare (before -> after) |")
print("|---|---|---|---|---|")
for t in tasks:
    fb = " -> ".join(f"{minus('overhead', s, t, 'framework'):+.2f}" for s in SIDES)
    ratio = " -> ".join(f"{over('overhead', s, t, 'framework'):.3f}" for s in SIDES)
    n = len(of("overhead", "after", t, "bare"))
    print(f"| {t} | {n} | {statistics.median(of('overhead', 'after', t, 'bare')):.2f} | {fb} | {ratio} |")

ways = [w for w in dict.fromkeys(r["way"] for r in rows if r["source"] == "parts") if w != "bare"]
print()
print("| recipe | bare ms (after) | " + " | ".join(ways) + " |")
print("|---|---|" + "---|" * len(ways))
for t in dict.fromkeys(r["task"] for r in rows if r["source"] == "parts"):
    cells = [" -> ".join(f"{minus('parts', s, t, w):+.2f}" for s in SIDES) for w in ways]
    print(f"| {t} | {statistics.median(of('parts', 'after', t, 'bare')):.2f} | " + " | ".join(cells) + " |")

print()
ab_ways = ("callbacks apart", "self.log", "before")
print("| recipe | log_every_n_steps | rounds | after ms | " + " | ".join(f"{w} - after" for w in ab_ways) + " |")
print("|---|---|---|---|" + "---|" * len(ab_ways))
for r in ab:
    every = "1" if "trainer.log_every_n_steps=1" in r["overrides"] else "10"
    diffs = [statistics.median(x[w] - x["after"] for x in r["rounds"]) for w in ab_ways]
    cells = " | ".join(f"{d:+.2f}" for d in diffs)
    print(f"| {r['task']} | {every} | {len(r['rounds'])} | {r['ms']['after']:.2f} | {cells} |")
