"""Round 5's quiet rerun (2026-12-02, 21:05-21:36 UTC): its JSON lines -> round5_quiet_runs.csv, one row per timed
round and way, for the marked tables of docs/benchmarks.md.

python docs/evidence/overhead/round5_quiet_tabulate.py <commit>
"""

import csv
import json
import sys
from pathlib import Path

here = Path(__file__).parent
commit = sys.argv[1] if len(sys.argv) > 1 else ""
# file -> the name its rows carry in the "source" column
SOURCES = {
    "round5_quiet.jsonl": "overhead",
    "round5_ab_quiet.jsonl": "ab",
    "round5_parts_quiet.jsonl": "parts",
    "round5_parts_quiet_every50.jsonl": "parts",
    "round5_parts_quiet_nologs.jsonl": "parts",
}
rows = []
for name, source in SOURCES.items():
    for line in (here / name).read_text().splitlines():
        result = json.loads(line)
        for i, rnd in enumerate(result["rounds"]):
            for way, ms in rnd.items():
                rows.append(
                    {
                        "source": source, "file": name, "commit": commit, "task": result["task"], "round": i,
                        "way": way, "ms_per_step": ms, "steps": result["steps"], "warmup": result["warmup"],
                        "seed": 0, "overrides": " ".join(result["overrides"]),
                    }
                )  # fmt: skip
with open(here / "round5_quiet_runs.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
print(len(rows), "rows")
