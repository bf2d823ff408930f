"""Training throughput of a recipe through the framework vs a plain PyTorch loop, in one process.

    python -m bench.throughput task=classification trainer=gpu [--steps 200] [--warmup 30]

Both ways use the same model (same initial weights), data (the datamodule's batches, normalised and
augmented the same way), optimiser and precision. The framework way is ``Trainer.fit`` on the Trainer
``train.py`` builds (``train.build``: every default callback and guard, CSV and W&B offline, the progress bar;
``callbacks=none`` or ``logger=csv`` on the command line to leave them out); the plain way is a hand-written
loop calling the recipe's ``training_step`` math (for classification: ``loss_fn(model(x), y)`` written out).
Prints samples/s, their ratio and peak GPU memory.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
from contextlib import nullcontext
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, open_dict

from bench.common import Stopwatch, compose_config

# W&B offline (no network), one validation batch per epoch (the steps are what is timed); overridable
DEFAULTS = ("logger.wandb.mode=offline", "trainer.limit_val_batches=1", "++trainer.num_sanity_val_steps=0")


class StepTimer(L.Callback):
    """Times ``Trainer.fit`` from the end of warm-up to the last step, counting samples."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.watch, self.samples = warmup, Stopwatch(device), 0

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.warmup:
            self.watch.start()
        if trainer.global_step >= self.warmup:
            self.samples += batch_size(batch)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.watch.stop()


def batch_size(batch: Any) -> int:
    """The number of samples in a batch (the first tensor's first dimension)."""
    first = batch[0] if isinstance(batch, (tuple, list)) else next(iter(batch.values()))
    while isinstance(first, (tuple, list)):
        first = first[0]
    return int(first.shape[0])


def framework_run(cfg: DictConfig, steps: int, warmup: int, device: torch.device) -> dict:
    """Samples/s of ``Trainer.fit`` on the Trainer ``train.py`` builds (``train.build``: every configured callback
    and guard, the configured loggers), stopped after ``warmup + steps`` steps."""
    from recipes.run.checks import check_config
    from recipes.run.loggers import finish_wandb
    from train import build

    with open_dict(cfg):
        cfg.trainer.max_steps = warmup + steps
    datamodule, task, loggers, trainer = build(cfg, check_config(cfg))
    initial = copy.deepcopy(task.state_dict())
    timer = StepTimer(warmup, device)
    trainer.callbacks.insert(0, timer)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        trainer.fit(task, datamodule=datamodule)
    finally:
        finish_wandb(loggers)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    task.load_state_dict(initial)  # the plain loop starts from the same weights
    return {"samples_per_s": timer.samples / timer.watch.seconds, "peak_mib": peak, "trainer": trainer, "task": task}


def autocast_for(precision: str, device: torch.device):
    """The autocast context matching a Lightning precision string."""
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    return nullcontext()


def plain_run(cfg: DictConfig, datamodule, task, trainer: L.Trainer, steps: int, warmup: int, device: torch.device) -> dict:
    """Samples/s of a hand-written loop over the same batches, model, optimiser and precision.

    The task stays attached to the (finished) trainer only so that recipe code reading trainer facts
    (epoch length, the datamodule) works; ``self.log`` is switched off, and the loop is ours.
    """
    task = task.to(device)
    task.train()
    trainer.training = True  # the datamodule augments training batches
    task.log = task.log_dict = lambda *args, **kwargs: None  # plain PyTorch logs nothing per step
    optimizer = task.build_optimizer()
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.trainer.precision.startswith("16"))
    loader = datamodule.train_dataloader()
    plain_classification = type(task).__name__ == "ClassificationTask"
    watch, samples = Stopwatch(device), 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    for step, batch in enumerate(batches):
        if step == warmup:
            watch.start()
        if step == warmup + steps:
            break
        batch = tuple(t.to(device, non_blocking=True) for t in batch)
        batch = datamodule.on_after_batch_transfer(batch, 0)
        with autocast_for(cfg.trainer.precision, device):
            if plain_classification:
                images, labels = batch
                loss = task.losses["loss"](task.model(images), labels)
            else:
                loss = task.training_step(batch, step)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if step >= warmup:
            samples += batch_size(batch)
    watch.stop()
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    return {"samples_per_s": samples / watch.seconds, "peak_mib": peak}


def measure(overrides: list[str], steps: int, warmup: int) -> dict:
    """Both ways on the same config; the plain way starts from the framework's initial weights."""
    cfg = compose_config(overrides)
    L.seed_everything(cfg.seed if cfg.seed is not None else 0, verbose=False)
    device = torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")
    framework = framework_run(cfg, steps, warmup, device)
    trainer = framework["trainer"]
    plain = plain_run(cfg, trainer.datamodule, framework["task"], trainer, steps, warmup, device)
    return {
        "overrides": overrides,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "framework_samples_per_s": round(framework["samples_per_s"], 1),
        "plain_samples_per_s": round(plain["samples_per_s"], 1),
        "ratio": round(framework["samples_per_s"] / plain["samples_per_s"], 3),
        "framework_peak_mib": round(framework["peak_mib"], 1),
        "plain_peak_mib": round(plain["peak_mib"], 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. task=detection trainer=gpu")
    parser.add_argument("--steps", type=int, default=200, help="timed steps after warm-up")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first (compile, cuDNN autotune)")
    args = parser.parse_intermixed_args(argv)
    result = measure([*DEFAULTS, *args.overrides], args.steps, args.warmup)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
