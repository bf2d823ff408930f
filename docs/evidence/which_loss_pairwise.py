"""Paired differences between two non-default losses of a which_loss sweep, from its evidence runs.csv (seed by seed).
PYTHONPATH=. python docs/evidence/which_loss_pairwise.py"""

import csv

from recipes.results.which_loss import t_interval

PAIRS = {
    "regression": [("huber", "mae"), ("smooth_l1", "mae"), ("huber", "smooth_l1"), ("quantile", "mae"), ("log_cosh", "mae")],
    "classification": [("focal", "label_smoothing"), ("label_smoothing", "hinge"), ("focal", "hinge")],
}
for name, metric, pairs in [
    ("regression", "test/mae", PAIRS["regression"]),
    ("regression_10trials_5seeds", "test/mae", PAIRS["regression"]),
    ("classification", "test/acc", PAIRS["classification"]),
]:
    by: dict[str, dict[int, float]] = {}
    with open(f"docs/evidence/which_loss_{name}_cpu/runs.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["phase"] == "final":
            by.setdefault(row["loss"], {})[int(row["seed"])] = float(row[metric])
    for a, b in pairs:
        i = t_interval([by[a][s] - by[b][s] for s in sorted(by[a])])
        print(f"{name} {metric} {a} - {b}: {i.mean:+.4f} [{i.low:+.4f}, {i.high:+.4f}] over {i.n} seeds")
