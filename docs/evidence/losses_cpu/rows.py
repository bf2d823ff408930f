"""Append the rows of a ``bench.losses`` output to runs.csv under a state name.

Run: python docs/evidence/losses_cpu/rows.py <bench output .txt> <state> <commit> >> docs/evidence/losses_cpu/runs.csv
"""

import re
import sys
from pathlib import Path

path, state, commit = sys.argv[1:4]
text = Path(path).read_text()
repeats = re.search(r"median of (\d+)", text)[1]
for line in text.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) != 9 or not re.fullmatch(r"[\d.]+", cells[3]):
        continue  # not a measured row
    loss, kind, size, ours, ref, ratio, source, value_diff, grad_diff = cells
    print(",".join([loss, kind, size, state, commit, ours, ref, ratio, source, value_diff, grad_diff, repeats]))
