"""Logger factories: W&B online when logged in and reachable, offline otherwise, never a hang; CSV that a
resumed run appends to."""

from __future__ import annotations

import csv
import logging
import netrc
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from recipes.run.errors import RunError, write_failed

log = logging.getLogger(__name__)

WANDB_HOST = "api.wandb.ai"


def wandb_api_key() -> str | None:
    """The W&B API key from ``WANDB_API_KEY`` or ``~/.netrc``, or None when not logged in."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    try:
        auth = netrc.netrc().authenticators(WANDB_HOST)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None
    return auth[2] if auth else None


def wandb_server() -> tuple[str, int]:
    """Host and port of the W&B server: ``WANDB_BASE_URL`` (self-hosted) or api.wandb.ai."""
    url = urlparse(os.environ.get("WANDB_BASE_URL") or f"https://{WANDB_HOST}")
    return url.hostname or WANDB_HOST, url.port or (80 if url.scheme == "http" else 443)


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds, name lookup included.

    ``socket.create_connection``'s timeout does not cover the DNS lookup, which can hang for much
    longer without a network, so the probe runs in a daemon thread that is given up after ``timeout``.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True, name="wandb-probe")
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def resolve_wandb_mode(mode: str) -> str:
    """``auto``: online if an API key exists and the server answers, else offline (sync later)."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if wandb_api_key() is None:
        log.info("W&B: not logged in, logging offline; upload later with `wandb sync <run dir>`")
        return "offline"
    host, port = wandb_server()
    if not reachable(host, port):
        log.warning("W&B: logged in but %s:%d is unreachable, logging offline; `wandb sync` later", host, port)
        return "offline"
    return "online"


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger; with ``offline_fallback`` a run that fails to start online (the server is
    not W&B, a proxy answers, the key is refused) starts offline instead, with a warning."""

    def __init__(self, *args: Any, offline_fallback: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offline_fallback = offline_fallback

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None and self.offline_fallback:
            self.offline_fallback = False
            try:
                return super().experiment
            except Exception as err:  # wandb raises CommError, AuthenticationError, UsageError, ...
                import wandb

                log.warning("W&B: starting online failed (%s), logging offline; `wandb sync` later", str(err)[:200])
                if wandb.run is not None:
                    wandb.finish(exit_code=1)
                self._experiment = None
                self._wandb_init["mode"] = "offline"
        return super().experiment


def wandb_logger(mode: str = "auto", **kwargs: Any) -> WandbLogger:
    """A ``WandbLogger`` whose mode is resolved as above; ``auto`` falls back to offline if online fails."""
    os.makedirs(kwargs.get("save_dir", "."), exist_ok=True)
    resolved = resolve_wandb_mode(mode)
    return WandbLogger(mode=resolved, offline_fallback=mode == "auto" and resolved == "online", **kwargs)


def finish_wandb(loggers: list | None = None) -> None:
    """Close the W&B runs of ``loggers`` and the global one, flushing them, so the next job starts its own."""
    import sys

    for logger in loggers or []:
        run = getattr(logger, "_experiment", None)  # only runs that were started; never start one here
        if type(logger).__name__ == "WandbLogger" and run is not None:
            run.finish()
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued, not deleted, and a file it
    cannot write (a full disk) is a ``RunError`` naming the file, not a traceback."""

    def save(self) -> None:
        try:
            super().save()
        except OSError as err:
            raise csv_error(Path(self.metrics_file_path), err) from err

    def log_hparams(self, params: dict[str, Any]) -> None:
        try:
            super().log_hparams(params)
        except OSError as err:
            raise csv_error(Path(self.log_dir) / self.NAME_HPARAMS_FILE, err) from err

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


def csv_error(path: Path, err: OSError) -> RunError:
    """The message for a CSV log file that could not be written: why, and what to do."""
    return RunError(
        f"csv logger: {write_failed(path, err)}; free some space, or write the run elsewhere with "
        "hydra.run.dir=<folder> (or logger.csv.save_dir=<folder>)"
    )


class CSVLogger(LightningCSVLogger):
    """Lightning's CSVLogger whose run resumed in its own folder (``ckpt_path=last``) appends to ``metrics.csv``.

    Rows for the steps between the last checkpoint and the kill appear twice: once from the killed run,
    once from the resumed one (the later rows are the ones training continued from).
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            try:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = AppendingWriter(log_dir=self.log_dir)
            except OSError as err:
                raise csv_error(Path(self.log_dir), err) from err
        return self._experiment
