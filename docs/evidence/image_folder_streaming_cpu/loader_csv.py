"""loader.txt (``bench.streaming loader`` output) -> loader.csv: one row per timed pass, with its run's load."""

import csv
import re
from pathlib import Path

here = Path(__file__).parent
rows, load = [], None
for line in (here / "loader.txt").read_text().splitlines():
    if line.startswith("#"):
        load = float(re.search(r"load average ~?([\d.]+)", line)[1])
    elif m := re.match(r"num_workers=(\d+): (\d+) samples/s \((\d+) batches of (\d+)\)", line):
        workers, rate, batches, size = map(int, m.groups())
        rows.append({"load": load, "batches": batches, "batch_size": size, "num_workers": workers, "samples_per_s": rate})
with open(here / "loader.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
print(f"{len(rows)} passes -> loader.csv")
