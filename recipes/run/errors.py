"""The error for a run that cannot go on (as opposed to ``losses.errors.ConfigError``, a wrong setting)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

FULL_BELOW = 64 * 2**20  # bytes free under which a write that PyTorch reports as failed is taken for a full disk


class RunError(RuntimeError):
    """The run cannot go on (a full disk, a non-finite loss); printed as one message, the run's outputs kept."""


class SigtermError(RunError):
    """A run that SIGTERM stopped: ``state`` says what was saved, ``then`` how to go on (the command)."""

    def __init__(self, state: str, then: str) -> None:
        self.state, self.then = state, then
        super().__init__(f"the run was stopped by SIGTERM; {state}. {then}")

    def __reduce__(self) -> tuple:  # pickled with its fields (a launcher may send a job's error between processes)
        return type(self), (self.state, self.then)


def free_bytes(path: Path) -> float:
    """Bytes free on the disk that holds ``path`` (its nearest existing folder); NaN when that cannot be read."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return float(shutil.disk_usage(folder).free)
    except OSError:
        return float("nan")


def torch_write_failed(err: BaseException) -> bool:
    """Whether ``err`` is PyTorch's own report of a failed write (a full disk reaches ``torch.save`` as this
    RuntimeError, not as an OSError): "PytorchStreamWriter failed writing file ...: file write failed"."""
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        words in text for words in ("PytorchStreamWriter failed", "file write failed", "unexpected pos")
    )


def write_failed(path: Path, err: BaseException) -> str:
    """What went wrong writing ``path``: "no space left on the device writing <path> (N MiB free)" for a full disk
    (ENOSPC, a quota, or PyTorch's failed write with almost nothing free), else "cannot write <path> (why)"."""
    free = free_bytes(path)
    code = getattr(err, "errno", None)
    full = code in (errno.ENOSPC, errno.EDQUOT) or (torch_write_failed(err) and not free >= FULL_BELOW)
    if full:
        return f"no space left on the device writing {path} ({free / 2**20:.0f} MiB free)"
    if isinstance(err, OSError):
        reason = os.strerror(code) if code else str(err)
    else:
        reason = f"PyTorch: {str(err).strip().splitlines()[0][-120:]}; {free / 2**20:.0f} MiB free"
    return f"cannot write {path} ({reason})"
