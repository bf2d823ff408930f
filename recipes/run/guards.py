"""Guard against training on garbage: a non-finite loss or gradient stops the run (or skips the batch).

``NonFiniteGuard`` watches every step of every task: it records what each loss slot computed (value
and named terms), checks the total loss before backward and the gradients before the optimiser
step, and on a NaN or Inf either stops with a ``NonFiniteLossError`` that names the step, the losses
and their terms (after saving the last good state as ``checkpoints/last_good.ckpt``), or, with
``skip_nonfinite=true``, drops that step's update and counts it in ``train/skipped_nonfinite``.
Before the generic advice the report names any loss hyperparameter or data setting out of the ordinary
(not finite, huge, an all-zero weight), so a bad setting is not blamed on the learning rate.
Under DDP every rank takes the same decision (the check is all-reduced), so no rank waits on another.
The check is made before the optimiser step, after backward, on the steps Lightning writes logs
(``nonfinite_check_every``, by default ``trainer.log_every_n_steps``), so that training does not wait for the
device in between; with ``nonfinite_check_every=1`` (and with ``skip_nonfinite=true``) every step is checked and
a NaN reaches the gradients, never the weights.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.optim import Optimizer

from losses.errors import ConfigError
from recipes.run.errors import RunError
from recipes.run.launch import disarm_child_observer

log = logging.getLogger(__name__)


class NonFiniteLossError(RunError):
    """A training step produced a NaN or Inf loss or gradient."""


def describe(value: Any) -> str:
    """A short text for a loss value or term: the number, or ``nan`` / ``inf`` counts for a tensor."""
    if not isinstance(value, Tensor):
        return repr(value)
    value = value.detach().float()
    if value.numel() == 1:
        return f"{value.item():.6g}"
    bad = (~torch.isfinite(value)).sum().item()
    return f"tensor of {value.numel()} values, {bad} not finite"


def nonfinite_inputs(batch: Any) -> list[str]:
    """Which floating-point tensors of a batch (by position or key) hold NaN or Inf."""
    found: list[str] = []

    def visit(obj: Any, where: str) -> None:
        if isinstance(obj, Tensor):
            if obj.is_floating_point() and not bool(torch.isfinite(obj).all()):
                found.append(where or "batch")
        elif isinstance(obj, (list, tuple)):
            for i, item in enumerate(obj):
                visit(item, f"{where}[{i}]")
        elif isinstance(obj, dict):
            for key, item in obj.items():
                visit(item, f"{where}[{key!r}]")

    visit(batch, "batch")
    return found


HUGE = 1e6  # a float setting this large is out of the ordinary (float32 overflows past 3.4e38)


def unusual(name: str, value: Any) -> str | None:
    """Why one setting could make a loss non-finite: not finite, huge, or (a tensor) all zeros; None if ordinary."""
    if isinstance(value, Tensor) and value.is_floating_point() and value.numel():
        value = value.detach()
        if not bool(torch.isfinite(value).all()):
            return f"{name} holds non-finite values"
        if not bool(value.any()):
            return f"{name} is all zeros"
        top = float(value.abs().max())
        return f"{name} has values up to {top:.3g}" if top >= HUGE else None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{name} is {value}"
        if abs(value) >= HUGE:
            return f"{name} is {value:.3g}" + (", inf in float32" if abs(value) > torch.finfo(torch.float32).max else "")
    return None


def settings(obj: Any) -> dict[str, Any]:
    """The constructor arguments an object keeps under their own names: a loss's hyperparameters, a datamodule's."""
    names = inspect.signature(type(obj).__init__).parameters
    return {name: getattr(obj, name) for name in names if name != "self" and hasattr(obj, name)}


def unusual_settings(trainer: L.Trainer, pl_module: L.LightningModule) -> list[str]:
    """The loss hyperparameters and data settings that could explain a non-finite loss, with their config keys."""
    found = []
    for slot, loss in getattr(pl_module, "losses", {}).items():
        name = getattr(loss, "name", type(loss).__name__)
        for key, value in settings(loss).items():
            if why := unusual(key, value):
                found.append(f"loss '{name}': {why} ({slot}.{key})")
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None:
        for key, value in settings(datamodule).items():
            if why := unusual(key, value):
                found.append(f"data: {why} (data.{key})")
    return found


def advice(trainer: L.Trainer, pl_module: L.LightningModule, generic: str) -> str:
    """The fix to suggest: the out-of-the-ordinary settings first, when there are any, then the generic steps."""
    suspects = unusual_settings(trainer, pl_module)
    if not suspects:
        return f"Fix: {generic}"
    it = "it" if len(suspects) == 1 else "them"
    return f"Likely cause: {'; '.join(suspects)}. Fix: correct {it}; if that is not enough, {generic}"


@dataclass
class Backward:
    """What one backward pass was given: enough to report it, kept on the device until a check fails."""

    batch_idx: int
    loss: Tensor
    records: dict[str, tuple[str, Tensor, dict[str, Tensor]]]
    batch: Any


class NonFiniteGuard(L.Callback):
    """Stop (default) or skip the update (``skip=True``) when a step's loss or gradients are not finite.

    The losses of the step's backward passes and the gradients' inf-norm are checked together before the
    optimiser step, with one host sync (and one all-reduce under DDP) per check; with ``check_every=1`` the
    weights are then still those of the last good step. ``check_every`` defaults to the logging interval
    (``trainer.log_every_n_steps``, 1 with ``skip=True``): between checks the losses are summed on the device.
    """

    def __init__(self, skip: bool = False, checkpoint_name: str = "last_good.ckpt", check_every: int | None = None) -> None:
        if check_every is not None and (not isinstance(check_every, int) or check_every < 1):
            raise ConfigError(f"nonfinite_check_every: must be an integer >= 1 (got {check_every!r})")
        if skip and check_every is not None and check_every > 1:
            raise ConfigError("nonfinite_check_every: skip_nonfinite=true needs a check every step (set it to 1)")
        # None: the logging interval (1 with skip); > 1: the losses are summed on the device, read every N steps
        self.check_every = 1 if skip else check_every
        self._loss_sum: Tensor | None = None
        self.skip = skip
        self.checkpoint_name = checkpoint_name
        self.skipped = 0
        self._records: dict[str, tuple[str, Tensor, dict[str, Tensor]]] = {}
        self._hooks: list[Any] = []
        self._backwards: list[Backward] = []
        self._batch: Any = None
        self._batch_idx = -1

    # ----- what each loss slot computed -------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.check_every is None:  # the steps on which Lightning writes logs, which read values back anyway
            self.check_every = max(1, trainer.log_every_n_steps)
        if self._hooks or self.check_every > 1:  # every N steps the report names the window, not a loss's terms
            return
        for slot, loss in getattr(pl_module, "losses", {}).items():
            self._hooks.append(loss.register_forward_hook(self._recorder(slot)))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def _recorder(self, slot: str) -> Any:
        def record(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if module.training and isinstance(output, Tensor):
                terms = {k: v.detach() for k, v in getattr(module, "terms", {}).items()}
                self._records[slot] = (getattr(module, "name", type(module).__name__), output.detach(), terms)

        return record

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.check_every != 1:
            return
        self._records = {}
        self._batch, self._batch_idx = batch, batch_idx

    # ----- the check --------------------------------------------------------------------------
    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        if self.check_every > 1:  # one addition on the device: the sum of the losses is finite only if each was
            if self._loss_sum is None:  # a copy, so that adding in place leaves the loss alone
                self._loss_sum = loss.detach().clone()
            else:
                self._loss_sum.add_(loss.detach())
            return
        self._backwards.append(Backward(self._batch_idx, loss.detach(), self._records, self._batch))

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        if self.check_every > 1:
            if (trainer.global_step + 1) % self.check_every == 0:
                self.check_window(trainer, pl_module, optimizer)
            return  # no work and no host sync on the other steps
        backwards, self._backwards = self._backwards, []
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        losses_ok = torch.stack([torch.isfinite(b.loss).all() for b in backwards]).all() if backwards else None
        grads_ok = self.gradients_finite(trainer, params)
        if losses_ok is None and grads_ok is None:
            return
        one = torch.ones((), dtype=torch.bool, device=params[0].device if params else backwards[0].loss.device)
        ok = torch.stack([one if f is None else f for f in (losses_ok, grads_ok)]).float()
        if trainer.world_size > 1:  # every rank must take the same decision
            ok = trainer.strategy.reduce(ok, reduce_op="min")
        if bool(ok.all()):  # the one host sync of the step
            return
        self._fail(trainer, pl_module, params, backwards, loss_elsewhere=bool(ok[0] < 1))
        for p in params:  # skip mode: drop this update (optimisers pass over parameters without a gradient)
            p.grad = None
        self.skipped += 1
        pl_module.log("train/skipped_nonfinite", float(self.skipped), on_step=False, on_epoch=True, reduce_fx="max")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.check_every > 1 and self._loss_sum is not None:  # the steps after the last check
            self.check_window(trainer, pl_module, None)

    @staticmethod
    def gradients_finite(trainer: L.Trainer, params: list[Tensor]) -> Tensor | None:
        """Whether every gradient is finite, as a tensor on the device (None: no gradients, or a GradScaler that
        skips inf gradients itself)."""
        if not params or getattr(trainer.precision_plugin, "scaler", None) is not None:
            return None
        return torch.isfinite(torch.nn.utils.get_total_norm([p.grad for p in params], norm_type=float("inf")))

    def check_window(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer | None) -> None:
        """Every ``check_every`` steps: the summed losses of the window and this step's gradients, one host sync.

        A non-finite gradient of an earlier step has reached the weights, so the losses after it are not finite.
        """
        total, self._loss_sum = self._loss_sum, None
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None] if optimizer else []
        flags = [
            f for f in (None if total is None else torch.isfinite(total), self.gradients_finite(trainer, params)) if f is not None
        ]
        if not flags:
            return
        ok = torch.stack(flags).all().float()
        if trainer.world_size > 1:
            ok = trainer.strategy.reduce(ok, reduce_op="min")
        if bool(ok):
            return
        raise NonFiniteLossError(
            f"non-finite loss or gradients within the {self.check_every} steps before global step "
            f"{trainer.global_step} (nonfinite_check_every={self.check_every}); the weights may already hold "
            "them. "
            + advice(
                trainer,
                pl_module,
                "rerun from the last checkpoint with nonfinite_check_every=1 to find the step, or lower the "
                "learning rate (task.optimizer.lr) / clip gradients (trainer.gradient_clip_val=1.0)",
            )
        )

    def _fail(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        params: list[Tensor],
        backwards: list[Backward],
        loss_elsewhere: bool,
    ) -> None:
        bad = next((b for b in backwards if not bool(torch.isfinite(b.loss).all())), None)
        last = backwards[-1] if backwards else None
        if bad is not None:
            what, shown = f"the loss is {describe(bad.loss)}", bad
        elif loss_elsewhere:
            where = f"on rank {trainer.global_rank} it is {describe(last.loss) if last else 'not computed'}"
            what, shown = f"the loss is not finite on another process ({where})", last
        else:
            names = {id(p): n for n, p in pl_module.named_parameters()}
            bad_names = [names.get(id(p), "?") for p in params if not bool(torch.isfinite(p.grad).all())]
            listed = ", ".join(bad_names[:5]) + (f" and {len(bad_names) - 5} more" if len(bad_names) > 5 else "")
            what, shown = f"the loss is finite but the gradients of {listed or 'another process'} are not", last
        report = self.report(trainer, what, shown)
        generic = (
            "lower the learning rate (task.optimizer.lr), clip gradients (trainer.gradient_clip_val=1.0), "
            "check the data and the loss hyperparameters"
        )
        if self.skip:
            if trainer.is_global_zero:
                log.warning("skipping the update (skip_nonfinite=true): %s. %s", report, advice(trainer, pl_module, generic))
            return
        saved = self.save_last_good(trainer)
        if trainer.is_global_zero:
            disarm_child_observer()  # the other ranks stop too; their exit must not kill this one before it reports
        fix = advice(trainer, pl_module, f"{generic}, or skip such batches with skip_nonfinite=true")
        raise NonFiniteLossError(f"{report}. {saved}{fix}")

    def report(self, trainer: L.Trainer, what: str, backward: Backward | None) -> str:
        """One message: where (epoch, batch, step), what, each loss slot with its value and terms, the inputs."""
        batch_idx = backward.batch_idx if backward else self._batch_idx
        where = f"epoch {trainer.current_epoch}, batch {batch_idx} (global step {trainer.global_step})"
        lines = [f"non-finite training step at {where}: {what}"]
        for slot, (name, value, terms) in (backward.records if backward else {}).items():
            parts = ", ".join(f"{k}={describe(v)}" for k, v in terms.items())
            lines.append(f"loss '{name}' in slot '{slot}' = {describe(value)}" + (f" (terms: {parts})" if parts else ""))
        bad_inputs = nonfinite_inputs(backward.batch if backward else self._batch)
        lines.append(f"non-finite inputs in {', '.join(bad_inputs)}" if bad_inputs else "the batch's inputs are finite")
        return "; ".join(lines)

    def save_last_good(self, trainer: L.Trainer) -> str:
        """Save the weights as they were before this step (the update has not happened yet)."""
        callback = trainer.checkpoint_callback
        dirpath = getattr(callback, "dirpath", None)
        folder = Path(dirpath) if dirpath else Path(trainer.default_root_dir) / "checkpoints"
        path = folder / self.checkpoint_name
        try:
            trainer.save_checkpoint(path)
        except Exception as err:  # the report matters more than the checkpoint
            return f"The last good state could not be saved ({err}). "
        return f"The last good state (before this step) is saved in {path}. "
