"""One Lightning callback for many: Lightning calls every callback on every hook of every step (about 10 µs per
callback per step, whatever it does), so the run's callbacks that Lightning does not look up by type go to the
Trainer as one ``Bundle`` that calls each hook on the members that implement it."""

from __future__ import annotations

import re
import warnings
from copy import deepcopy
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter, Checkpoint, EarlyStopping, ProgressBar, Timer
from lightning.pytorch.profilers import PassThroughProfiler

# what Lightning finds in ``trainer.callbacks`` by type (the checkpoint, the bar, the stop, the time limit, the
# writer of predictions), or treats apart (monitoring callbacks run after the others at a validation's end)
KEPT_APART = (Checkpoint, EarlyStopping, ProgressBar, Timer, BasePredictionWriter)
CHECKPOINT_HOOKS = ("on_save_checkpoint", "on_load_checkpoint")
HOOKS = tuple(
    name
    for name, value in vars(L.Callback).items()
    if callable(value) and (name.startswith("on_") or name in ("setup", "teardown")) and name not in CHECKPOINT_HOOKS
)
STATE = ("state_dict", "load_state_dict", *CHECKPOINT_HOOKS)


def implements(callback: L.Callback, hook: str) -> bool:
    """Whether ``callback`` does something on ``hook`` (its class or the instance overrides ``Callback``'s no-op)."""
    return hook in vars(callback) or getattr(type(callback), hook, None) is not getattr(L.Callback, hook)


class Bundle(L.Callback):
    """Calls each hook on the members that implement it, in their order (the table is built once, here).

    Members keep their checkpoint state under their own ``state_key`` in ``checkpoint["callbacks"]``, as if each
    were a callback of the Trainer, so checkpoints written with or without the bundle load either way.
    """

    def __init__(self, members: list[L.Callback]) -> None:
        self.members = list(members)
        for hook in HOOKS:
            calls = [(member.state_key, getattr(member, hook)) for member in self.members if implements(member, hook)]
            if calls:
                setattr(self, hook, self.forward(hook, calls))
        self.stateful = [m for m in self.members if any(implements(m, hook) for hook in STATE)]
        keys = "|".join(re.escape(repr(m.state_key)) for m in self.stateful)
        if keys:  # Lightning would ask for the members by key on loading a checkpoint: they are here
            warnings.filterwarnings("ignore", message=rf"Be aware that when using `ckpt_path`.*callbacks: \[(({keys})(, )?)+\]")

    @staticmethod
    def forward(hook: str, calls: list[tuple[str, Any]]) -> Any:
        """The hook of the bundle: each member's in turn (under a profiler, each timed under its own name)."""

        def call(trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
            if isinstance(trainer.profiler, PassThroughProfiler):
                for _, fn in calls:
                    fn(trainer, pl_module, *args, **kwargs)
                return
            for key, fn in calls:
                with trainer.profiler.profile(f"[Callback]{key}.{hook}"):
                    fn(trainer, pl_module, *args, **kwargs)

        return call

    def find(self, kind: type) -> L.Callback | None:
        """The first member of type ``kind``, or None."""
        return next((m for m in self.members if isinstance(m, kind)), None)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("callbacks")  # absent in a weights-only checkpoint
        for member in self.stateful:
            if states is not None and (state := member.state_dict()):
                states[member.state_key] = state
            member.on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("callbacks") or {}
        for member in self.stateful:
            member.on_load_checkpoint(trainer, pl_module, checkpoint)
        for member in self.stateful:
            state = states.get(member.state_key)
            if state:
                member.load_state_dict(deepcopy(state))


def bundled(callbacks: list[L.Callback]) -> list[L.Callback]:
    """``callbacks`` with those that Lightning does not look up by type as one ``Bundle``, where the first was."""
    apart = [isinstance(c, KEPT_APART) for c in callbacks]
    members = [c for c, kept in zip(callbacks, apart, strict=True) if not kept]
    if len(members) < 2:
        return list(callbacks)
    first = apart.index(False)
    kept = [c for c, k in zip(callbacks, apart, strict=True) if k]
    return [*kept[:first], Bundle(members), *kept[first:]]


def bundle_trainer(trainer: L.Trainer) -> None:
    """Bundle the Trainer's callbacks in place, after Lightning has added its own (the model summary)."""
    trainer.callbacks = bundled(trainer.callbacks)


def find_callback(trainer: L.Trainer, kind: type) -> L.Callback | None:
    """The Trainer's callback of type ``kind``, also when it is a member of a ``Bundle``."""
    for callback in trainer.callbacks:
        found = callback.find(kind) if isinstance(callback, Bundle) else callback
        if isinstance(found, kind):
            return found
    return None
