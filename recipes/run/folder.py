"""A run folder belongs to one run: a new run never writes over another run's checkpoints, two live runs never
share a folder, and a run stopped by SIGTERM (what SLURM and most schedulers send) saves where it was."""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import threading
from pathlib import Path
from typing import IO

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from losses.errors import ConfigError
from recipes.run.bundle import find_callback
from recipes.run.errors import SigtermError
from recipes.run.launch import disarm_child_observer, rank

LOCK_NAME = ".run.lock"
_held: dict[Path, IO[str]] = {}  # the folders this process holds a lock on, with the open lock file


def checkpoint_folder(cfg: DictConfig) -> Path:
    """Where this run's checkpoints go: the checkpoint callback's folder, else ``<output_dir>/checkpoints``."""
    dirpath = OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath")
    return Path(dirpath) if dirpath else Path(cfg.paths.output_dir) / "checkpoints"


def check_run_folder(cfg: DictConfig) -> None:
    """Refuse to train in a folder that holds another run's checkpoints, unless this run resumes from one of them
    (``ckpt_path=last`` or a file in that folder) or ``overwrite=true`` says to replace them."""
    folder = checkpoint_folder(cfg)
    found = sorted(p.name for p in folder.glob("*.ckpt")) if folder.is_dir() else []
    if not found or not cfg.get("fit", True) or cfg.get("overwrite"):
        return
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None and (str(ckpt) == "last" or Path(str(ckpt)).resolve().parent == folder.resolve()):
        return
    raise ConfigError(
        f"hydra.run.dir: {folder.parent} holds another run's checkpoints ({', '.join(found[:4])}); resume that run "
        "with ckpt_path=last, start this one in a new folder (leave hydra.run.dir unset), or set overwrite=true to "
        "replace them"
    )


def lock_run_folder(folder: str | Path) -> None:
    """Hold ``<folder>/.run.lock`` for as long as this process runs there (rank 0 only: the ranks of one DDP run
    share the folder); a second live run in the folder is a ConfigError naming the process that holds it."""
    folder = Path(folder).resolve()
    if rank() != 0 or folder in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 (held open while the run lives)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            f"hydra.run.dir: {folder} is in use by a live run ({holder}); wait for it to end, or start this run in "
            "another folder (leave hydra.run.dir unset)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    _held[folder] = handle


def unlock_run_folder(folder: str | Path) -> None:
    """Release the lock ``lock_run_folder`` took (the kernel releases it too when the process dies)."""
    handle = _held.pop(Path(folder).resolve(), None)
    if handle is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def resume_command(folder: str | Path) -> str:
    """The command that continues the run in ``folder``: this run's overrides, ``ckpt_path=last`` and the folder."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(("ckpt_path=", "hydra.run.dir="))]
    except ValueError:  # composed in-process, not launched by Hydra
        overrides = []
    words = ["python", "train.py", *overrides, "ckpt_path=last", f"hydra.run.dir={folder}"]
    return " ".join(shlex.quote(w) for w in words)


class SaveOnSigterm(L.Callback):
    """On SIGTERM, save an exact-resume ``last.ckpt`` at the step Lightning stopped on (it ends the fit after the
    current batch); ``train.py`` then reports the stop with the command that resumes, and exits 1, not 0.

    Under DDP, Lightning's own SIGTERM handler broadcasts from inside the signal handler and forwards the signal to
    the other ranks, which then run the handler twice when the scheduler signalled them too (as SLURM and Kubernetes
    do): the ranks' collectives no longer pair and the run hangs for ever (seen with two CPU ranks). Here a signal
    only marks this rank, and after each training or test batch the ranks take the decision together (one
    all-reduce): every rank stops after the same batch, whichever of them was signalled.
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self.saved: Path | None = None
        self.signalled = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.take_over_sigterm(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.take_over_sigterm(trainer)

    def take_over_sigterm(self, trainer: L.Trainer) -> None:
        """Replace Lightning's SIGTERM handler (registered at the start of every stage) when several ranks run."""
        if trainer.world_size < 2 or threading.current_thread() is not threading.main_thread():
            return
        self.signalled = False
        signal.signal(signal.SIGTERM, self.note_sigterm)

    def note_sigterm(self, signum: int, frame: object) -> None:
        self.signalled = True  # no collective in a signal handler: the ranks decide after the batch

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        self.stop_together(trainer)

    def on_test_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        self.stop_together(trainer)

    def stop_together(self, trainer: L.Trainer) -> None:
        """Every rank learns whether any was signalled; Lightning then ends the stage after this batch on each."""
        if trainer.world_size < 2:
            return
        flag = torch.tensor([1.0 if self.signalled else 0.0], device=trainer.strategy.root_device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() > 0:
            trainer._signal_connector.received_sigterm = True  # what Lightning's handler sets; its loops read it

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        if trainer.is_global_zero:
            disarm_child_observer()  # the other ranks stop too; their exit must not kill this one before it reports
        if trainer.state.fn != "fit":
            return
        self.saved = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(self.saved)


def stopped_by_sigterm(trainer: L.Trainer, folder: str | Path) -> SigtermError:
    """The error for a run that SIGTERM stopped in training: where its state is and how to resume it."""
    saver = find_callback(trainer, SaveOnSigterm)
    saved = saver.saved if saver else None
    state = f"its state at step {trainer.global_step} is saved in {saved}" if saved else "nothing was saved"
    return SigtermError(state, f"Resume it with: {resume_command(folder)}")


def stopped_testing(ckpt: str | None) -> SigtermError:
    """The error for a run that SIGTERM stopped while it tested ``ckpt`` (None: weights no checkpoint holds)."""
    if not ckpt:
        return SigtermError("it was testing the weights it had trained, which no checkpoint holds", "Run it again")
    return SigtermError(f"it was testing {ckpt}", f"Test it with: {shlex.join(['python', 'eval.py', f'ckpt_path={ckpt}'])}")
