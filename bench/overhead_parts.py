"""Where framework - bare goes: the same recipe timed with the framework's parts added one at a time, in one process.

    python -m bench.overhead_parts task=classification [--steps 200] [--warmup 20] [--repeats 3]

Ways, on the same pre-made batches (``bench.overhead``), each repeat running every way once:
- ``bare``: ``bench.overhead``'s bare fit (no callbacks, loggers or logging);
- ``bare+10 no-op callbacks``: the same with ten empty ``Callback()``: Lightning's dispatch alone;
- ``bare+callbacks``: the same with the framework's callbacks (less ``LearningRateMonitor``, which needs a logger);
- ``framework, no step logs``: the framework's Trainer with ``log_every_n_steps`` past the run (no logging steps);
- ``framework, CSV only``: without the W&B logger;
- ``framework``: as ``train.py`` builds it;
- ``framework, logs every step``: ``log_every_n_steps=1``, so the cost of one logging step can be read off.
Reported: the median ms per step of each, and each minus ``bare``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor

from bench.overhead import StepClock, bare_trainer, clock, config, feed, finish, framework_trainer, premade_batches, silenced
from recipes.run.bundle import Bundle, bundled

WAYS = (
    "bare",
    "bare+10 no-op callbacks",
    "bare+callbacks",
    "framework, no step logs",
    "framework, CSV only",
    "framework",
    "framework, logs every step",
)


def one_way(way: str, cfg: Any, batches: list[Any], steps: int, warmup: int) -> float:
    """ms per step of one way (a fresh datamodule, task and Trainer each time)."""
    datamodule, task, trainer = framework_trainer(cfg)
    feed(datamodule, batches)
    if way.startswith("framework"):
        if way == "framework, no step logs":
            trainer.log_every_n_steps = 10 * steps
        elif way == "framework, logs every step":
            trainer.log_every_n_steps = 1
        elif way == "framework, CSV only":
            trainer.loggers = [lg for lg in trainer.loggers if type(lg).__name__ == "CSVLogger"]
        trainer.fit(task, datamodule=datamodule)
        finish(trainer)
        return clock(trainer).ms_per_step(warmup)
    unbundled = [m for c in trainer.callbacks for m in (c.members if isinstance(c, Bundle) else [c])]
    callbacks = bundled([c for c in unbundled if not isinstance(c, (StepClock, LearningRateMonitor))])
    finish(trainer)
    bare = bare_trainer(cfg, steps)
    if way == "bare+callbacks":
        bare.callbacks.extend(callbacks)
    elif way == "bare+10 no-op callbacks":
        bare.callbacks.extend(L.Callback() for _ in range(10))
    bare.fit(silenced(task), datamodule=datamodule)
    return clock(bare).ms_per_step(warmup)


def prepared(task: str, overrides: list[str], total: int) -> tuple[Any, list]:
    """The run config of ``task`` for ``total`` steps and its pre-made batches (one more than the steps)."""
    cfg = config(task, overrides, total)
    datamodule, _, trainer = framework_trainer(cfg)
    batches = premade_batches(datamodule, total + 1)
    finish(trainer)
    return cfg, batches


def measure(task: str, overrides: list[str], steps: int, warmup: int, repeats: int) -> dict[str, Any]:
    """Median ms per step of every way over ``repeats`` rounds, and each minus bare."""
    total = warmup + steps
    cfg, batches = prepared(task, overrides, total)
    rounds = [{way: one_way(way, cfg, batches, total, warmup) for way in WAYS} for _ in range(repeats)]
    median = {way: statistics.median(r[way] for r in rounds) for way in WAYS}
    minus = {way: statistics.median(r[way] - r["bare"] for r in rounds) for way in WAYS}
    return {
        "task": task,
        "overrides": overrides,
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "ms": {k: round(v, 4) for k, v in median.items()},
        "minus_bare_ms": {k: round(v, 4) for k, v in minus.items()},
        "rounds": [{k: round(v, 4) for k, v in r.items()} for r in rounds],
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides; task=<name> (repeatable) picks the recipes")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="append the results here as JSON lines")
    args = parser.parse_intermixed_args(argv)
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message="exact resume")
    tasks = [o.split("=", 1)[1] for o in args.overrides if o.startswith("task=")] or ["classification"]
    rest = [o for o in args.overrides if not o.startswith("task=")]
    results = []
    for task in tasks:
        results.append(measure(task, rest, args.steps, args.warmup, args.repeats))
        print(json.dumps(results[-1]), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(results[-1]) + "\n")
    return results


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    main()
