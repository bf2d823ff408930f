"""Logger factories: W&B online when logged in and reachable, offline otherwise, never a prompt or a hang; CSV that
a resumed run appends to; MLflow in the run folder."""

from __future__ import annotations

import csv
import logging
import os
import socket
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from losses.errors import ConfigError
from recipes.run.errors import RunError, write_failed

log = logging.getLogger(__name__)


def wandb_base_url() -> str:
    """The W&B server: ``WANDB_BASE_URL``, else wandb's own settings (``wandb login --host`` writes them), whose
    default is ``https://api.forge.coreweave.com`` in wandb 0.31 (``https://api.wandb.ai`` in older versions)."""
    from wandb.sdk import wandb_setup

    return os.environ.get("WANDB_BASE_URL") or wandb_setup.singleton().settings.base_url


def wandb_logged_in(base_url: str) -> bool:
    """Whether wandb finds credentials for ``base_url`` without asking, where ``wandb.init`` would look:
    ``WANDB_API_KEY``, an identity token file, ``~/.netrc`` (or ``$NETRC``; for the default host also the
    ``api.wandb.ai`` entry older logins wrote), the ``api_key`` setting. Asks no one and opens no connection."""
    from wandb.errors import AuthenticationError
    from wandb.sdk.lib import wbauth

    try:
        auth = wbauth.authenticate_session(host=base_url, source="loss-recipes", prompt=False, update_session=False)
    except AuthenticationError as err:  # a key in the wrong format, or both a key and a token file
        log.warning("W&B: the credentials found are unusable (%s)", err)
        return False
    return auth is not None


def wandb_server(base_url: str) -> tuple[str, int]:
    """Host and port of the W&B server at ``base_url``."""
    url = urlparse(base_url)
    return url.hostname or "", url.port or (80 if url.scheme == "http" else 443)


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
    """``auto``: online if wandb finds a login and the server answers, else offline (``wandb sync`` later).

    ``online`` without a login is a ConfigError (wandb would prompt, or fail after the run has started); an
    unreachable server is one too. ``WANDB_MODE`` decides ``auto`` when it is set.
    """
    if mode == "auto" and os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if mode not in ("auto", "online"):
        return mode
    base_url = wandb_base_url()
    if not wandb_logged_in(base_url):
        if mode == "online":
            raise ConfigError(
                f"logger.wandb.mode=online: not logged in to W&B ({base_url}); run `wandb login`, set WANDB_API_KEY, "
                "or use logger.wandb.mode=auto (offline without a login) or logger.wandb.mode=offline"
            )
        log.info("W&B: not logged in to %s, logging offline; upload later with `wandb sync <run dir>/wandb`", base_url)
        return "offline"
    host, port = wandb_server(base_url)
    if not reachable(host, port):
        if mode == "online":
            raise ConfigError(
                f"logger.wandb.mode=online: {host}:{port} is unreachable; use logger.wandb.mode=auto or offline "
                "and `wandb sync` later"
            )
        log.warning("W&B: logged in but %s:%d is unreachable, logging offline; `wandb sync` later", host, port)
        return "offline"
    return "online"


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, sending numbers from a thread (``log_metrics``); with ``offline_fallback`` a run that
    fails to start online (the server is not W&B, a proxy answers, the key is refused) starts offline instead."""

    def __init__(self, *args: Any, offline_fallback: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offline_fallback = offline_fallback
        self._sender: ThreadPoolExecutor | None = None
        self._sent: list[Future] = []
        # Lightning passes anonymous=None; wandb 0.31 warns "The anonymous setting has no effect" for any value
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Numbers go to W&B from a thread of their own: ``run.log`` waits for the wandb service to take them
        (about 20 ms on a busy CPU), which would stall every logging step. Images and tables wait for the numbers
        before them, then go at once."""
        if self._experiment is None or not all(isinstance(v, (int, float)) for v in metrics.values()):
            self.flush()
            super().log_metrics(metrics, step)
            return
        if self._sender is None:
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wandb-log")  # one: the steps stay in order
        self._sent.append(self._sender.submit(LightningWandbLogger.log_metrics, self, dict(metrics), step))

    def flush(self) -> None:
        """Wait until every number handed to ``log_metrics`` is with W&B (an error in sending is raised here)."""
        sent, self._sent = self._sent, []
        for future in sent:
            future.result()

    def log_hyperparams(self, params: Any) -> None:
        self.flush()
        super().log_hyperparams(params)

    def finalize(self, status: str) -> None:
        self.flush()
        super().finalize(status)

    def __getstate__(self) -> dict[str, Any]:
        self.flush()
        state = super().__getstate__()
        state["_sender"], state["_sent"] = None, []  # a thread pool does not pickle (DDP spawn)
        return state

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
            if hasattr(logger, "flush"):
                logger.flush()  # the numbers still on their way
            run.finish()
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def mlflow_logger(tracking_uri: str | None = None, save_dir: str = "mlruns", **kwargs: Any) -> Any:
    """Lightning's MLFlowLogger; without a ``tracking_uri``, MLflow's file store in ``save_dir``.

    MLflow 3 keeps the file store in maintenance mode and refuses to open one unless ``MLFLOW_ALLOW_FILE_STORE``
    is true; a run folder's own store is what this config asks for, so that is set (unless the user set it).
    """
    from lightning.pytorch.loggers.mlflow import _MLFLOW_AVAILABLE, MLFlowLogger

    if not _MLFLOW_AVAILABLE:
        raise ConfigError(
            "logger.mlflow: MLflow is not installed; `pip install mlflow-skinny` (or the project's `.[mlflow]` extra), "
            "or choose a logger without it (logger=csv, wandb, tensorboard)"
        )
    if not tracking_uri or tracking_uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLFlowLogger(tracking_uri=tracking_uri, save_dir=save_dir, **kwargs)


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
