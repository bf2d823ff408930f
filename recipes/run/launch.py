"""Several processes, one run folder: Hydra under Lightning's DDP launcher, and a clean start and end.

Lightning's DDP launcher starts ranks > 0 by running this script again with the same arguments plus
``hydra.run.dir=<hydra.run.dir>`` (and ``hydra.output_subdir=null``). ``pin_run_folder`` makes that
folder the one rank 0 resolved (in a multirun job too, whose children must run that job alone, not the
sweep), so every rank writes into one folder. ``CheckOutputDir`` refuses an unwritable output folder
before Hydra writes anything. ``RecordFailures`` gives each failed sweep job an ``error.txt`` and the sweep one
line per failed job at its end; ``StopSweepOnSigterm`` ends a sweep whose job SIGTERM stopped; ``check_optimized_metric``
fails a sweep job that does not log the metric the sweeper reads.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import yaml
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from losses.errors import ConfigError
from recipes.run.errors import RunError, SigtermError

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


# ----- sweeps ----------------------------------------------------------------------------------
ERROR_FILE = "error.txt"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


class JobFailed(CompactHydraException):
    """A sweep job's failure as one line: Hydra prints a CompactHydraException without a traceback."""


def failure_line(err: BaseException) -> str:
    """The one line a failed job reports: ``error: <message>`` as ``train.py`` prints it, or the exception's type
    and first line for an unexpected one."""
    if isinstance(err, (ConfigError, RunError, JobFailed)):
        return str(err) if isinstance(err, JobFailed) else f"error: {err}"
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


class RecordFailures(Callback):
    """Hydra callback for multiruns: a failed job writes its one-line error to ``<job folder>/error.txt`` (with the
    traceback after it for an exception that is not a ConfigError or RunError); the sweep goes on over the other
    jobs (Hydra's basic sweeper would stop after the batch that failed; Optuna's keeps its ``max_failure_rate``); at
    the end one line per failed job, and exit status 1, without a traceback."""

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None
        self.started = 0.0
        self.failed: dict[Path, str] = {}  # job folder -> "job N (overrides): error: ..."
        self.reported = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        self.started = time.time()
        atexit.register(self.report_at_exit)  # a sweeper that raises (Optuna over max_failure_rate) ends here

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:  # a job run again in its folder: the old error is not its error
            (Path(config.hydra.runtime.output_dir) / ERROR_FILE).unlink(missing_ok=True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.FAILED or config.hydra.mode != RunMode.MULTIRUN:
            return
        err = job_return._return_value
        folder = Path(config.hydra.runtime.output_dir).resolve()
        line = failure_line(err)
        text = f"{line}\n"
        if not isinstance(err, (ConfigError, RunError)):
            text += "\n" + "".join(traceback.format_exception(err))
            line += f" (traceback in {folder / ERROR_FILE})"
        try:
            (folder / ERROR_FILE).write_text(text)
        except OSError as write_err:  # a full disk: the line is still reported at the end
            log.warning("could not write %s: %s", folder / ERROR_FILE, write_err)
        label = f"job {config.hydra.job.num} ({' '.join(job_return.overrides or []) or 'no overrides'}): {line}"
        self.failed[folder] = label
        if config.hydra.sweeper.get("_target_") == BASIC_SWEEPER:
            job_return.status, job_return.return_value = JobStatus.COMPLETED, None  # go on with the other jobs
        else:
            job_return.return_value = JobFailed(label)  # the sweeper records it; if it raises, one line

    def failures(self) -> list[str]:
        """Every failed job of this sweep: those this process ran, and the ``error.txt`` written since it started
        (by jobs another launcher ran in other processes)."""
        found = dict(self.failed)
        for path in sorted(self.sweep_dir.rglob(ERROR_FILE)) if self.sweep_dir and self.sweep_dir.is_dir() else []:
            folder = path.parent.resolve()
            if folder in found or path.stat().st_mtime < self.started - 1:
                continue
            overrides_file = folder / ".hydra" / "overrides.yaml"
            overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
            first = (path.read_text().splitlines() or [""])[0]
            found[folder] = f"job {folder.relative_to(self.sweep_dir)} ({' '.join(overrides) or 'no overrides'}): {first}"
        return list(found.values())

    def report(self) -> bool:
        """Print one line per failed job; whether there was one."""
        failed = [] if self.reported else self.failures()
        self.reported = True
        if failed:
            lines = "\n".join(f"  {line}" for line in failed)
            print(
                f"error: {len(failed)} job{'s' if len(failed) > 1 else ''} of the sweep in {self.sweep_dir} failed "
                f"(each failed job's folder holds its {ERROR_FILE}):\n{lines}",
                file=sys.stderr,
            )
        return bool(failed)

    def report_at_exit(self) -> None:
        self.report()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.report():
            raise SystemExit(1)


def grid_jobs(config: DictConfig) -> list[list[str]] | None:
    """Every job's overrides of a basic sweep, in the order it launches them; None for another sweeper (it draws its
    jobs as it goes) or a sweep this cannot expand (a ``glob`` choice needs the config loader)."""
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    try:
        parsed = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except Exception:  # what Hydra refuses it reports itself, before the first job
        return None


def not_run(jobs: list[list[str]] | None, num: int, most: int = 10) -> str:
    """The sentence naming the jobs after job ``num`` (``jobs``: the sweep's, None when the sweeper draws them)."""
    if jobs is None:
        return "The jobs the sweeper had not started did not run."
    left = [f"job {i} ({' '.join(job) or 'no overrides'})" for i, job in enumerate(jobs) if i > num]
    if not left:
        return "It was the sweep's last job."
    more = f", and {len(left) - most} more" if len(left) > most else ""
    return f"{len(left)} job{'s' if len(left) > 1 else ''} did not run: {', '.join(left[:most])}{more}."


class StopSweepOnSigterm(Callback):
    """Hydra callback: a sweep whose jobs run in this process (the basic launcher) ends when SIGTERM stops one of
    them, in training (its state saved by ``SaveOnSigterm``) or testing: the next jobs do not start; one message
    names the stopped job, its checkpoint, the command that resumes (or tests) it and the jobs that did not run;
    exit status 1, as a single run stopped by SIGTERM. Listed after ``RecordFailures`` (Hydra calls ``on_job_end``
    in reverse), which it ends before it records the job; the failures of earlier jobs are still reported at exit."""

    def __init__(self) -> None:
        self.in_process = False
        self.sweep_dir: Path | None = None
        self.jobs: list[list[str]] | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.in_process = config.hydra.launcher.get("_target_") == BASIC_LAUNCHER
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        self.jobs = grid_jobs(config)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        err = job_return._return_value
        if not self.in_process or job_return.status != JobStatus.FAILED or not isinstance(err, SigtermError):
            return
        num = int(config.hydra.job.num)
        print(
            f"error: the sweep in {self.sweep_dir} was stopped by SIGTERM in job {num} "
            f"({' '.join(job_return.overrides or []) or 'no overrides'}); {err.state}. {err.then}. "
            f"{not_run(self.jobs, num)}",
            file=sys.stderr,
        )
        raise SystemExit(1)


def check_optimized_metric(name: str | None, metrics: Mapping[str, Any]) -> None:
    """The metric a sweeper reads must be logged: in a multirun a job without it fails with a ConfigError (the
    sweeper would get None, and Optuna fail only after every trial ran); in a single run it is a warning."""
    if not name or name in metrics:
        return
    from hydra.core.hydra_config import HydraConfig

    logged = sorted(str(key) for key in metrics)
    example = next((key for key in logged if key.startswith("val/")), logged[0] if logged else "val/loss")
    message = (
        f"optimized_metric: {name!r} is not among the metrics this run logged ({', '.join(logged) or 'none'}); set "
        f"optimized_metric=<one of them> (what a sweep optimises: a validation metric, e.g. optimized_metric={example})"
    )
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ConfigError(message)
    log.warning(message)


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


def disarm_child_observer() -> None:
    """Stop Lightning's child-process observer from killing this process (rank 0) once it handles a failure itself.

    The observer polls every 5 s and SIGKILLs rank 0 as soon as a child rank has exited non-zero. After a failure
    that every rank shares (a non-finite step) the child exits first, and on a loaded machine rank 0 was killed
    before it printed its message (exit -9, no ``error:`` line). From here ``finish_processes`` waits for the children
    itself and kills any that hang, so the observer has nothing left to guard. (Private Lightning API: the thread
    keeps no public handle; if its name or loop changes this does nothing.)
    """
    for thread in threading.enumerate():
        if thread.name == "child-process-observer" and hasattr(thread, "_run"):
            thread._run = lambda: True  # its loop ends at the next poll without killing anything


def finish_processes(trainer: Any, ok: bool, grace_s: float = 60.0) -> None:
    """End a distributed run cleanly: ranks meet, the process group closes, rank 0 waits for its children.

    Without this the gloo process group is torn down by interpreter exit while the other rank may still
    be talking to it, which occasionally aborts a finished run. After an error the ranks do not meet (one
    may be gone); children still running after ``grace_s`` are killed.
    """
    disarm_child_observer()  # from here this process waits for (and if need be kills) its children itself
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
