"""The two H100 logs -> ``gpu_h100/runs.csv`` (one row per throughput run, loss kernel and speedrun seed).

python docs/evidence/gpu_h100_runs.py round1=<commit> round2=<commit>
"""

import csv
import json
import sys
from pathlib import Path

here = Path(__file__).parent
commits = dict(arg.split("=") for arg in sys.argv[1:])
SHARED = {"logger=csv", "callbacks=none", "trainer=gpu"}  # what bench.throughput adds to every run
LOSS_COLUMNS = ("loss", "kind", "size", "ours_ms", "reference_ms", "ratio", "reference", "value_rel_diff", "grad_rel_diff")


def json_objects(text: str) -> list[dict]:
    """Every JSON object in the log: one-line throughput results and the speedrun's indented one."""
    decoder, found, i = json.JSONDecoder(), [], 0
    while (i := text.find("{", i)) != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        found.append(obj)
        i = end
    return found


rows = []
for n in (1, 2):
    text = (here / f"gpu_round{n}_h100.log").read_text()
    base = {"round": n, "commit": commits.get(f"round{n}", "")}
    for obj in json_objects(text):
        if "framework_samples_per_s" in obj:
            overrides = [o for o in obj["overrides"] if o not in SHARED]
            batch = next(int(o.partition("=")[2]) for o in overrides if o.startswith("data.batch_size="))
            task = next((o.partition("=")[2] for o in overrides if o.startswith("task=")), "classification")
            keep = ("framework_samples_per_s", "plain_samples_per_s", "ratio", "framework_peak_mib", "plain_peak_mib")
            fields = {"bench": "throughput", "task": task, "overrides": " ".join(overrides), "batch": batch}
            rows.append(base | fields | {k: obj[k] for k in keep})
        elif "runs" in obj:
            for run in obj["runs"]:
                reached = int(run["test_acc"] >= obj["target"])
                fields = {"seed": run["seed"], "fit_seconds": run["fit_seconds"], "epochs": run["epochs"]}
                rows.append(base | {"bench": "speedrun"} | fields | {"test/acc": run["test_acc"], "reached": reached})
    losses = text.partition("== losses")[2].partition("\n== ")[0]
    for line in losses.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == len(LOSS_COLUMNS) and cells[0] not in {"loss", "---"}:
            rows.append(base | {"bench": "losses"} | dict(zip(LOSS_COLUMNS, cells)))
columns = list(dict.fromkeys(k for row in rows for k in row))
out = here / "gpu_h100" / "runs.csv"
out.parent.mkdir(exist_ok=True)
with open(out, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
print(f"{len(rows)} rows -> {out}")
