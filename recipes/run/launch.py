"""Several processes, one run folder: Hydra under Lightning's DDP launcher, and a clean start and end.

Lightning's DDP launcher starts ranks > 0 by running this script again with the same arguments plus
``hydra.run.dir=<hydra.run.dir>`` (and ``hydra.output_subdir=null``). ``pin_run_folder`` makes that
folder the one rank 0 resolved (in a multirun job too, whose children must run that job alone, not the
sweep), so every rank writes into one folder. ``CheckOutputDir`` refuses an unwritable output folder
before Hydra writes anything.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)

FLAGS_WITH_VALUE = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


# ----- the output folder ----------------------------------------------------------------------
def writable_folder_error(folder: str | Path) -> str | None:
    """Why ``folder`` cannot be created or written to (read-only, not a folder, a full disk), or None when it can."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-") as probe:
            probe.write(bytes(2**16))  # an empty file fits on a full disk; 64 KiB (the config files' size) does not
            probe.flush()
    except OSError as err:
        return f"{err.strerror or err}{f': {err.filename}' if err.filename else ''}"
    return None


class CheckOutputDir(Callback):
    """Hydra callback: an output folder that cannot be written is one message and exit status 2.

    In a multirun it also makes ``${hydra:...}`` interpolations (``task_name``, ``paths.root_dir``)
    resolvable in ``hydra.sweep.dir``: Hydra sets its config only per job, after the sweep folder
    has been resolved, so without this a sweep without ``hydra.sweep.dir=`` fails.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.check(config, "run")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            HydraConfig.instance().set_config(config)
        self.check(config, "sweep")

    @staticmethod
    def check(config: DictConfig, mode: str) -> None:
        try:
            folder = str(OmegaConf.select(config, f"hydra.{mode}.dir"))
        except Exception:  # an interpolation that needs the job's runtime: Hydra reports it itself
            return
        reason = writable_folder_error(folder)
        if reason:
            print(
                f"error: hydra.{mode}.dir: cannot write the output folder {folder} ({reason}); choose a writable one "
                f"with hydra.{mode}.dir=<folder> or paths.log_dir=<folder>. Nothing was written.",
                file=sys.stderr,
            )
            raise SystemExit(2)


# ----- ranks -----------------------------------------------------------------------------------
def rank() -> int:
    """This process's global rank as the launcher set it (0 in a single process)."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def pin_run_folder(world_size: int) -> None:
    """Make the ranks that Lightning's DDP launcher will start write into this job's run folder.

    The launcher passes ``hydra.run.dir=<HydraConfig.run.dir>``: in a single run that is the folder
    template (``${now:...}`` could resolve to another second), in a multirun job it is not the job's
    folder at all, and the children would re-run the whole sweep (``-m`` is in ``sys.argv``).
    """
    from hydra.core.hydra_config import HydraConfig

    if world_size < 2 or not HydraConfig.initialized() or os.environ.get("LOCAL_RANK", "0") != "0":
        return
    hydra_cfg = HydraConfig.get()
    output_dir = OmegaConf.select(hydra_cfg, "runtime.output_dir", default=None)
    if output_dir is None:  # composed in-process, not launched by Hydra
        return
    with read_write(hydra_cfg), open_dict(hydra_cfg):
        hydra_cfg.run.dir = output_dir
    if hydra_cfg.mode == RunMode.MULTIRUN:
        flags, args = [], iter(sys.argv[1:])
        for arg in args:
            if arg in ("-m", "--multirun") or not arg.startswith("-"):
                continue
            flags.append(arg)
            if arg in FLAGS_WITH_VALUE:
                flags.append(next(args, ""))
        sys.argv = [sys.argv[0], *flags, *hydra_cfg.overrides.task, "hydra.mode=RUN"]


def finish_processes(trainer: Any, ok: bool, grace_s: float = 60.0) -> None:
    """End a distributed run cleanly: ranks meet, the process group closes, rank 0 waits for its children.

    Without this the gloo process group is torn down by interpreter exit while the other rank may still
    be talking to it, which occasionally aborts a finished run. After an error the ranks do not meet (one
    may be gone); children still running after ``grace_s`` are killed.
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        if ok and dist.get_world_size() > 1:
            try:
                if dist.get_backend() == "gloo":
                    dist.monitored_barrier(timeout=timedelta(seconds=grace_s))
                else:
                    dist.barrier()
            except Exception as err:  # a rank is gone: nothing to wait for
                log.warning("ranks did not meet at the end of the run: %s", err)
        dist.destroy_process_group()
    launcher = getattr(getattr(trainer, "strategy", None), "launcher", None)
    for proc in getattr(launcher, "procs", []):
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("rank process %d did not exit within %.0f s; killing it", proc.pid, grace_s)
            proc.kill()
            proc.wait()
