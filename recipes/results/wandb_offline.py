"""Read the metrics of an offline W&B run from its ``run-*.wandb`` file (no network, no wandb service).

W&B offline keeps history only in that binary file: a 7-byte header, then LevelDB-log records
(4-byte CRC, 2-byte length, 1-byte type) in 32 KiB blocks, each payload a protobuf ``Record``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

HEADER_BYTES = 7
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(path: str | Path) -> Iterator[bytes]:
    """Yield every record payload of a ``.wandb`` file, joining records split across blocks."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, pending = HEADER_BYTES, b""
    while pos + 7 <= len(data):
        room = BLOCK - pos % BLOCK
        if room < 7:  # the rest of a block too small for a header is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
        elif kind == 0 and length == 0:  # zero padding at the end
            pos += room - 7
    return


def history(path: str | Path) -> list[dict[str, object]]:
    """The rows logged with ``wandb.log`` (``history`` records) as dicts of key -> decoded value."""
    from wandb.proto import wandb_internal_pb2 as pb

    rows = []
    for payload in payloads(path):
        record = pb.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows


def record_types(path: str | Path) -> list[str]:
    """The type of every record in a ``.wandb`` file, in order (``history``, ``summary``, ``exit``, ...)."""
    from wandb.proto import wandb_internal_pb2 as pb

    types = []
    for payload in payloads(path):
        record = pb.Record()
        record.ParseFromString(payload)
        types.append(record.WhichOneof("record_type"))
    return types


def wait_until_closed(path: str | Path, timeout: float = 60.0) -> bool:
    """Wait for the run's ``exit`` record: W&B's writer process may still be flushing after ``finish()``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "exit" in record_types(path):
            return True
        time.sleep(0.2)
    return False


def run_files(run_dir: str | Path) -> list[Path]:
    """Every ``run-*.wandb`` file under a run folder."""
    return sorted(Path(run_dir).rglob("run-*.wandb"))
