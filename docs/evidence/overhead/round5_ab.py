"""Round 5's two changes, A/B in one process: the Trainer ``train.py`` builds, with each change undone or not.

    OMP_NUM_THREADS=1 python docs/evidence/overhead/round5_ab.py task=classification [overrides] --steps 200 \\
        --warmup 20 --repeats 6 --json docs/evidence/overhead/round5_ab.jsonl

Ways, each round running every way once in turn on the same pre-made batches (``bench.overhead``):
- ``after``: as built now (one ``Bundle`` of callbacks, step values straight to the loggers);
- ``callbacks apart``: the bundle's members back in ``trainer.callbacks`` (before round 5's bundle);
- ``self.log``: every step value through Lightning's ``self.log``, as before round 5;
- ``before``: both undone.
Reported: per way the median ms per step, and the median of the within-round differences from ``after``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import warnings
from typing import Any

import torch

from bench.overhead import clock, feed, finish, framework_trainer
from bench.overhead_parts import prepared
from recipes.run.bundle import Bundle

WAYS = ("after", "callbacks apart", "self.log", "before")


def through_self_log(task: Any) -> None:
    """The task's step values go through ``self.log`` as before round 5: ``log_train`` keeps its sums and hands
    every value to ``self.log`` (``train/loss`` with ``prog_bar``), and ``log_step`` does the same."""
    sums_of, due = task.log_train, task.step_logs_due

    def log_train(values: dict[str, Any], batch_size: int) -> None:
        logs = due()
        task.step_logs_due = lambda: False  # the sums only
        try:
            sums_of(values, batch_size)
        finally:
            del task.step_logs_due
        if logs:
            for name, v in values.items():
                task.log(f"train/{name}", v, on_step=True, on_epoch=False, prog_bar=name == "loss", batch_size=batch_size)

    def log_step(values: dict[str, Any]) -> None:
        for name, value in values.items():
            task.log(name, value, on_step=True, on_epoch=False)

    task.log_train, task.log_step = log_train, log_step


def one_way(way: str, cfg: Any, batches: list[Any], warmup: int) -> float:
    datamodule, task, trainer = framework_trainer(cfg)
    feed(datamodule, batches)
    if way in ("callbacks apart", "before"):
        trainer.callbacks = [m for c in trainer.callbacks for m in (c.members if isinstance(c, Bundle) else [c])]
    if way in ("self.log", "before"):
        through_self_log(task)
    trainer.fit(task, datamodule=datamodule)
    finish(trainer)
    return clock(trainer).ms_per_step(warmup)


def measure(task: str, overrides: list[str], steps: int, warmup: int, repeats: int) -> dict[str, Any]:
    total = warmup + steps
    cfg, batches = prepared(task, overrides, total)
    one_way("after", cfg, batches, warmup)  # the process's first fit is slower (imports, W&B's service): not timed
    rounds = []
    for i in range(repeats):
        order = WAYS if i % 2 == 0 else WAYS[::-1]  # alternate the order: no way always runs first
        rounds.append({way: one_way(way, cfg, batches, warmup) for way in order})
    return {
        "task": task,
        "overrides": overrides,
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "load": os.getloadavg(),
        "ms": {w: round(statistics.median(r[w] for r in rounds), 4) for w in WAYS},
        "minus_after_ms": {w: round(statistics.median(r[w] - r["after"] for r in rounds), 4) for w in WAYS},
        "rounds": [{w: round(r[w], 4) for w in WAYS} for r in rounds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--json")
    args = parser.parse_intermixed_args()
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message="exact resume")
    tasks = [o.split("=", 1)[1] for o in args.overrides if o.startswith("task=")] or ["classification"]
    rest = [o for o in args.overrides if not o.startswith("task=")]
    for task in tasks:
        result = measure(task, rest, args.steps, args.warmup, args.repeats)
        print(json.dumps(result), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    main()
