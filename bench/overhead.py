"""The framework's cost per training step, next to bare Lightning and a plain PyTorch loop, in one process.

    python -m bench.overhead task=vae [overrides] [--steps 100] [--warmup 20] [--repeats 5]
    python -m bench.overhead --all [--markdown docs/evidence/overhead/table.md]

Per recipe, with a tiny model and a few pre-made batches (so data loading is not timed), each repeat times:
- ``plain``: a hand-written loop over the same batches: transfer, the datamodule's ``on_after_batch_transfer``,
  the recipe's training-step math (logging switched off), backward, optimiser and schedule step;
- ``bare``: ``Trainer.fit`` on the same module with no callbacks, loggers, progress bar, checkpointing or logging;
- ``framework``: the Trainer ``train.py`` builds (``train.build``): every default callback and guard, CSV and
  W&B (offline) loggers, the progress bar, the recipe's own logging.
Reported: the median over repeats of ms per step of each, framework - bare (what this project adds) and
bare - plain (what Lightning adds), and from a profiled framework run (Lightning's ``SimpleProfiler``) the
ms per step of every hook that differs from the bare run's (the median over three profiled pairs).
``compile=true`` also counts the graphs compiled after warm-up (recompilations).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.profilers import SimpleProfiler
from omegaconf import DictConfig, open_dict

from bench.common import compose_config

TASKS = ("classification", "distillation", "vae", "siamese", "detection", "simclr", "regression", "segmentation")
# a tiny model and batch per recipe: the per-step cost is then the host-side Python this benchmark is about
TINY: dict[str, tuple[str, ...]] = {
    "classification": ("model=mlp", "model.hidden=[16]", "data.batch_size=16"),
    "distillation": ("model.hidden=[16]", "task.teacher_model.widths=[4,8]", "data.batch_size=16"),
    "vae": ("model.hidden=[16]", "model.latent_dim=2", "data.batch_size=16"),
    "siamese": ("model.widths=[4,8]", "model.num_outputs=8", "data.batch_size=16"),
    "detection": (
        "data.size=64", "data.max_scale=1.0", "data.train_size=64", "data.val_size=16", "data.test_size=16",
        "data.batch_size=4", "model.widths=[4,8,16]", "model.head_width=8", "model.head_depth=1",
    ),
    "simclr": ("model.widths=[4,8]", "data.batch_size=16"),
    "regression": ("model.hidden=[16]", "data.batch_size=16"),
    "segmentation": (
        "data.size=64", "data.max_scale=1.0", "data.train_size=64", "data.val_size=16", "data.test_size=16",
        "data.batch_size=4", "model.widths=[4,8]",
    ),
}  # fmt: skip
# every run: no validation inside the timed steps, W&B offline (no network), one epoch of pre-made batches
COMMON = ("logger.wandb.mode=offline", "trainer.limit_val_batches=1", "++trainer.num_sanity_val_steps=0")
DISTINCT_BATCHES = 4
# profiled actions that run every step, and those that only contain others (left out of the breakdown)
PER_STEP = ("batch", "step", "backward", "transfer", "dataloader_next", "zero_grad")
NESTING = ("run_training_epoch", "run_training_batch", "optimizer_step")
LOGGING = ("log", "log_dict", "log_loss", "log_train", "log_step")  # the recipe's logging calls, off in the plain and bare runs


class StepClock(L.Callback):
    """The wall-clock time of each whole training step: from one ``on_train_batch_start`` to the next."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self.starts.append(time.perf_counter())

    def ms_per_step(self, warmup: int) -> float:
        """Mean ms per step after the first ``warmup`` steps."""
        timed = self.starts[warmup:]
        return 1000 * (timed[-1] - timed[0]) / (len(timed) - 1)


def config(task: str, overrides: list[str], steps: int) -> DictConfig:
    """The run's config: the recipe at its tiny size, the user's overrides, ``steps`` optimiser steps."""
    cfg = compose_config([f"task={task}", *TINY.get(task, ()), *COMMON, *overrides])
    with open_dict(cfg):
        cfg.trainer.max_steps = steps
        cfg.trainer.max_epochs = 1
    return cfg


def premade_batches(datamodule: L.LightningDataModule, count: int) -> list[Any]:
    """``count`` training batches (``DISTINCT_BATCHES`` distinct ones, repeated), taken once from the datamodule."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    distinct = list(itertools.islice(datamodule.train_dataloader(), DISTINCT_BATCHES))
    return [distinct[i % len(distinct)] for i in range(count)]


class Batches:
    """Pre-made batches as one loader (Lightning takes a bare list for a list of loaders)."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def feed(datamodule: L.LightningDataModule, batches: list[Any]) -> None:
    """The datamodule's training loader becomes the pre-made batches (its ``on_after_batch_transfer`` stays)."""
    datamodule.train_dataloader = lambda: Batches(batches)


def silenced(task: L.LightningModule) -> L.LightningModule:
    """The recipe with its logging switched off (the plain and bare runs' module); ``unsilence`` undoes it."""
    for name in LOGGING:
        setattr(task, name, lambda *args, **kwargs: None)
    return task


def unsilence(task: L.LightningModule) -> None:
    for name in LOGGING:
        task.__dict__.pop(name, None)


def framework_trainer(cfg: DictConfig, profiler: Any = None) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """The datamodule, task and Trainer exactly as ``train.py`` builds them, a ``StepClock`` first."""
    from recipes.run.checks import check_config
    from train import build

    datamodule, task, loggers, trainer = build(cfg, check_config(cfg))
    trainer.callbacks.insert(0, StepClock())
    if profiler is not None:
        trainer.profiler = profiler
    return datamodule, task, trainer


def bare_trainer(cfg: DictConfig, steps: int, profiler: Any = None) -> L.Trainer:
    """``Trainer.fit`` with nothing on top: no callbacks, loggers, progress bar, checkpoints or model summary."""
    return L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        max_steps=steps,
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StepClock()],
        default_root_dir=cfg.paths.output_dir,
        profiler=profiler,
    )


def clock(trainer: L.Trainer) -> StepClock:
    return next(c for c in trainer.callbacks if isinstance(c, StepClock))


def plain_ms(task: L.LightningModule, datamodule: L.LightningDataModule, batches: list[Any], warmup: int) -> float:
    """ms per step of a hand-written loop doing the recipe's step on the same batches."""
    device = task.device
    task.train()
    datamodule.trainer.training = True  # the datamodule augments training batches
    optimizer = task.build_optimizer()
    scheduler = task.build_scheduler(optimizer, len(batches)) if task.scheduler_factory is not None else None
    starts = []
    for i, batch in enumerate(batches):
        starts.append(time.perf_counter())
        batch = datamodule.on_after_batch_transfer(tuple(t.to(device, non_blocking=True) for t in batch), 0)
        loss = task.training_step(batch, i)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    timed = starts[warmup:]
    return 1000 * (timed[-1] - timed[0]) / (len(timed) - 1)


def compiled_graphs() -> int:
    """Graphs torch.compile has built so far in this process (a rise after warm-up is a recompilation)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def one_round(cfg: DictConfig, batches_for: Any, steps: int, warmup: int) -> dict[str, Any]:
    """One repeat: the framework's fit, then the bare fit and the plain loop on the same (silenced) module."""
    datamodule, task, trainer = framework_trainer(cfg)
    batches = batches_for(datamodule)
    feed(datamodule, batches)
    graphs: list[int] = []
    if cfg.get("compile"):
        clock(trainer).on_train_batch_start = counting(clock(trainer), warmup, graphs)
    trainer.fit(task, datamodule=datamodule)
    framework = clock(trainer).ms_per_step(warmup)
    finish(trainer)
    silenced(task)
    bare = bare_trainer(cfg, steps)
    feed(datamodule, batches)
    bare.fit(task, datamodule=datamodule)
    plain = plain_ms(task, datamodule, batches, warmup)
    unsilence(task)
    row = {"plain": plain, "bare": clock(bare).ms_per_step(warmup), "framework": framework}
    if graphs:
        row["recompiles_after_warmup"] = compiled_graphs() - graphs[0]
    return row


def counting(watch: StepClock, warmup: int, graphs: list[int]) -> Any:
    """``watch.on_train_batch_start`` that also notes the compiled graphs at the end of warm-up."""
    original = watch.on_train_batch_start

    def on_train_batch_start(trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if batch_idx == warmup:
            graphs.append(compiled_graphs())
        original(trainer, module, batch, batch_idx)

    return on_train_batch_start


def finish(trainer: L.Trainer) -> None:
    """Close the run's W&B logs, as train.py does after fit."""
    from recipes.run.loggers import finish_wandb

    finish_wandb(list(trainer.loggers))


def per_step(profiler: SimpleProfiler, steps: int) -> dict[str, float]:
    """ms per training step of each profiled action (summed over its calls)."""
    return {action: 1000 * sum(d) / steps for action, d in profiler.recorded_durations.items()}


def hook_name(action: str) -> str:
    """A profiler action without the object's repr: ``[Callback]ModelCheckpoint.on_train_batch_end``."""
    if action.startswith("[Callback]"):
        owner, _, hook = action.rpartition(".")
        return f"[Callback]{owner[len('[Callback]') :].split('{')[0]}.{hook}"
    return action


def nesting(action: str) -> bool:
    """Whether a profiled action only contains others (``[LightningModule]Task.optimizer_step`` holds the closure:
    training step, backward, the ``on_before_optimizer_step`` hooks), or is the benchmark's own clock."""
    return action.rpartition(".")[2] in NESTING or action in NESTING or "StepClock" in action


def breakdown(cfg: DictConfig, batches_for: Any, steps: int) -> dict[str, float]:
    """ms per step by hook, framework minus bare (both profiled; actions of fit's start and end left out)."""
    folder = cfg.paths.output_dir
    datamodule, task, trainer = framework_trainer(cfg, profiler=SimpleProfiler(dirpath=folder, filename="framework"))
    batches = batches_for(datamodule)
    feed(datamodule, batches)
    trainer.fit(task, datamodule=datamodule)
    finish(trainer)
    framework = per_step(trainer.profiler, steps)
    silenced(task)
    bare = bare_trainer(cfg, steps, profiler=SimpleProfiler(dirpath=folder, filename="bare"))
    feed(datamodule, batches)
    bare.fit(task, datamodule=datamodule)
    unsilence(task)
    base = per_step(bare.profiler, steps)
    delta: dict[str, float] = {}
    for action in set(framework) | set(base):
        name = hook_name(action)
        delta[name] = delta.get(name, 0.0) + framework.get(action, 0.0) - base.get(action, 0.0)
    total = delta.get("run_training_epoch", 0.0)
    kept = {k: v for k, v in delta.items() if any(w in k for w in PER_STEP) and not nesting(k)}
    kept["other (Lightning's loop: logger connector, result collection)"] = total - sum(kept.values())
    kept = dict(sorted(kept.items(), key=lambda kv: -abs(kv[1])))
    return {"total (profiled)": total, **kept}


PROFILED = 3  # profiled pairs per recipe: one pair's per-hook differences are noise-sized on a shared CPU


def median_breakdown(cfg: DictConfig, batches_for: Any, steps: int, repeats: int) -> dict[str, float]:
    """Per hook, the median of ``breakdown`` over up to ``PROFILED`` profiled pairs (0 where a pair lacks the hook)."""
    runs = [breakdown(cfg, batches_for, steps) for _ in range(min(PROFILED, repeats))]
    names = {k for r in runs for k in r}
    median = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in names}
    return dict(sorted(median.items(), key=lambda kv: (not kv[0].startswith("total"), -abs(kv[1]))))


def measure(task: str, overrides: list[str], steps: int, warmup: int, repeats: int) -> dict[str, Any]:
    """Median ms per step of plain, bare and framework over ``repeats`` rounds, and the profiled breakdown."""
    total = warmup + steps
    cfg = config(task, overrides, total)
    L.seed_everything(0, verbose=False)
    cache: list[Any] = []

    def batches_for(datamodule: L.LightningDataModule) -> list[Any]:
        if not cache:
            cache.extend(premade_batches(datamodule, total + 1))
        return cache

    rounds = [one_round(cfg, batches_for, total, warmup) for _ in range(repeats)]
    median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    result = {
        "task": task,
        "overrides": overrides,
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "plain_ms": round(median["plain"], 4),
        "bare_ms": round(median["bare"], 4),
        "framework_ms": round(median["framework"], 4),
        # medians of the differences within a round: a busy machine slows whole rounds, not one way of a round
        "framework_minus_bare_ms": round(statistics.median(r["framework"] - r["bare"] for r in rounds), 4),
        "bare_minus_plain_ms": round(statistics.median(r["bare"] - r["plain"] for r in rounds), 4),
        # per round, so a ratio is read from runs made close together
        "rounds": [{k: round(v, 4) for k, v in r.items()} for r in rounds],
        "breakdown_ms": {
            k: round(v, 4) for k, v in median_breakdown(cfg, batches_for, total, repeats).items() if abs(v) >= 0.002
        },
    }
    if "recompiles_after_warmup" in median:
        result["recompiles_after_warmup"] = max(r["recompiles_after_warmup"] for r in rounds)
    return result


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as a table: ms per step of each way and their differences, and the top framework costs."""
    lines = [
        "| recipe | plain ms | bare Lightning ms | framework ms | framework - bare | bare - plain "
        "| largest framework costs (ms/step) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        costs = [kv for kv in r["breakdown_ms"].items() if not kv[0].startswith("total")]
        top = ", ".join(f"{k} {v:+.3f}" for k, v in costs[:3])
        lines.append(
            f"| {r['task']} | {r['plain_ms']:.3f} | {r['bare_ms']:.3f} | {r['framework_ms']:.3f} | "
            f"{r['framework_minus_bare_ms']:+.3f} | {r['bare_minus_plain_ms']:+.3f} | {top} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. task=vae trainer=gpu compile=true")
    parser.add_argument("--all", action="store_true", help="every recipe (task= is then not needed)")
    parser.add_argument("--steps", type=int, default=100, help="timed steps after warm-up")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of (framework, bare, plain); medians reported")
    parser.add_argument("--json", help="write the results here as JSON lines")
    parser.add_argument("--markdown", help="write the table here")
    args = parser.parse_intermixed_args(argv)
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", module="lightning")  # the "no validation" and "few workers" notes
    warnings.filterwarnings("ignore", message="exact resume")  # a list of pre-made batches has no sampler
    tasks = [o.split("=", 1)[1] for o in args.overrides if o.startswith("task=")]
    rest = [o for o in args.overrides if not o.startswith("task=")]
    chosen = TASKS if args.all else tasks or ["classification"]
    results = []
    for task in chosen:
        results.append(measure(task, rest, args.steps, args.warmup, args.repeats))
        print(json.dumps(results[-1]), flush=True)
        if args.json:  # as each recipe finishes, so that a long run keeps what it measured
            with open(args.json, "a") as f:
                f.write(json.dumps(results[-1]) + "\n")
    table = markdown(results)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    return results


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    main()
