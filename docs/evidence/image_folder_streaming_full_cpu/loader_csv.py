"""loader.txt (``bench.streaming loader`` output, two passes) -> loader.csv: one row per timed pass with its pass."""

import csv
import re
from pathlib import Path

here = Path(__file__).parent
rows, which = [], None
for line in (here / "loader.txt").read_text().splitlines():
    if line.startswith("# second pass"):
        which = "second"
    elif line.startswith("# 2026"):
        which = "first"
    elif m := re.match(r"num_workers=(\d+): (\d+) samples/s \((\d+) batches of (\d+)\)", line):
        workers, rate, batches, size = map(int, m.groups())
        rows.append({"pass": which, "batches": batches, "batch_size": size, "num_workers": workers, "samples_per_s": rate})
with open(here / "loader.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
print(f"{len(rows)} passes -> loader.csv")
