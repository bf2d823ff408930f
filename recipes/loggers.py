"""Logger factories: W&B online when logged in and reachable, offline otherwise, never a hang."""

from __future__ import annotations

import logging
import netrc
import os
import socket
from typing import Any

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


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_wandb_mode(mode: str) -> str:
    """``auto``: online if an API key exists and the server answers, else offline (sync later)."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if wandb_api_key() is None:
        log.info("W&B: not logged in, logging offline; upload later with `wandb sync <run dir>`")
        return "offline"
    if not reachable(WANDB_HOST):
        log.warning("W&B: logged in but %s is unreachable, logging offline; `wandb sync` later", WANDB_HOST)
        return "offline"
    return "online"


def wandb_logger(mode: str = "auto", **kwargs: Any):  # noqa: ANN201  (lightning import stays lazy)
    """A Lightning ``WandbLogger`` whose mode is resolved as above."""
    from lightning.pytorch.loggers import WandbLogger

    os.makedirs(kwargs.get("save_dir", "."), exist_ok=True)
    return WandbLogger(mode=resolve_wandb_mode(mode), **kwargs)


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
