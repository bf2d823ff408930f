"""Training throughput of a recipe through the framework vs a plain PyTorch loop, in one process.

    python -m bench.throughput task=classification trainer=gpu [--steps 200] [--warmup 30]

Both ways use the same model (same initial weights), data (the datamodule's batches, normalised and
augmented the same way), optimiser and precision. The framework way is ``Trainer.fit`` on the recipe
with its logging and progress bar; the plain way is a hand-written loop calling the recipe's
``training_step`` math (for classification: ``loss_fn(model(x), y)`` written out). Prints samples/s,
their ratio and peak GPU memory.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
from contextlib import nullcontext
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from bench.common import Stopwatch, compose_config
from recipes.run.checks import check_config


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


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The datamodule and the task, built from the config as ``train.py`` builds them."""
    slot_losses = check_config(cfg)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    if cfg.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    task = hydra.utils.instantiate(cfg.task, model=model, losses=slot_losses)
    return datamodule, task


def framework_run(cfg: DictConfig, datamodule, task, steps: int, warmup: int, device: torch.device) -> dict:
    """Samples/s of ``Trainer.fit`` (no validation, no checkpoints; logging and progress bar on)."""
    timer = StepTimer(warmup, device)
    bar = L.pytorch.callbacks.TQDMProgressBar(refresh_rate=cfg.trainer.log_every_n_steps)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        max_steps=warmup + steps,
        default_root_dir=cfg.paths.output_dir,  # recipes that write (images) write there
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        logger=L.pytorch.loggers.CSVLogger(cfg.paths.output_dir, name="bench"),
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        benchmark=cfg.trainer.get("benchmark", False),
        callbacks=[timer, bar],
        enable_model_summary=False,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit(task, datamodule=datamodule)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    return {"samples_per_s": timer.samples / timer.watch.seconds, "peak_mib": peak, "trainer": trainer}


def autocast_for(precision: str, device: torch.device):
    """The autocast context matching a Lightning precision string."""
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    return nullcontext()


def plain_run(
    cfg: DictConfig, datamodule, task, trainer: L.Trainer, steps: int, warmup: int, device: torch.device
) -> dict:
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
    datamodule, task = build(cfg)
    initial = copy.deepcopy(task.state_dict())
    if cfg.get("compile"):
        task.model.compile()
    framework = framework_run(cfg, datamodule, task, steps, warmup, device)
    task.load_state_dict(initial)
    plain = plain_run(cfg, datamodule, task, framework["trainer"], steps, warmup, device)
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
    result = measure(["logger=csv", "callbacks=none", *args.overrides], args.steps, args.warmup)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
