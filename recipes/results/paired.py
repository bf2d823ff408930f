"""Paired comparisons over seeds, shared by the sweep report and the which_loss ranking.

Two settings run with the same seed share the data split, the initial weights and the batch order, so their
difference seed by seed removes most of the seed's own variation. A comparison is "not distinguishable at this
size" when the 95% t interval of the paired differences covers 0, or when fewer than ``MIN_SEEDS`` seeds pair up
(with two seeds the interval is ±12.7 standard errors, with one there is none).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

LEVEL = 0.95
MIN_SEEDS = 3
TIE = "not distinguishable at this size"


@dataclass
class Interval:
    """Mean, sample std and the two-sided 95% t interval of the mean, over ``n`` values (nan bounds with one)."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    def covers(self, value: float) -> bool:
        return not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low <= value <= self.high


def t_interval(values: list[float], level: float = LEVEL) -> Interval:
    """The mean of ``values`` with its t interval: ``mean ± t_{(1+level)/2, n-1} * std / sqrt(n)``."""
    from scipy.stats import t

    n = len(values)
    mean = statistics.mean(values)
    if n < 2:
        return Interval(n, mean, 0.0, math.nan, math.nan)
    std = statistics.stdev(values)
    half = float(t.ppf((1 + level) / 2, n - 1)) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


@dataclass
class Paired:
    """A setting against its baseline: the paired differences (setting - baseline) by seed and the verdict."""

    differences: dict[int, float] = field(default_factory=dict)
    interval: Interval | None = None
    verdict: str = ""
    note: str = ""


def paired(values: dict[int, float], baseline: dict[int, float]) -> Paired:
    """Pair ``values`` with ``baseline`` by seed; "higher"/"lower" than the baseline only where the seeds show it.

    Seeds present on one side only are left out and named in ``note``.
    """
    seeds = sorted(set(values) & set(baseline))
    unpaired = sorted(set(values) ^ set(baseline))
    note = f"seeds without a pair left out: {', '.join(map(str, unpaired))}" if unpaired else ""
    if not seeds:
        return Paired(verdict="no paired seeds", note=note)
    differences = {s: values[s] - baseline[s] for s in seeds}
    interval = t_interval(list(differences.values()))
    if len(seeds) < MIN_SEEDS:
        note = "; ".join(filter(None, [note, f"{len(seeds)} paired seed(s), fewer than {MIN_SEEDS}"]))
        verdict = TIE
    elif interval.covers(0.0):
        verdict = TIE
    else:
        verdict = "higher" if interval.mean > 0 else "lower"
    return Paired(differences, interval, verdict, note)
