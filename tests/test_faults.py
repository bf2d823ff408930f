"""Faults around a run's files: a full disk (checkpoints, CSV logs), a resume with changed settings, a checkpoint
that does not fit the network."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from recipes.run.errors import RunError
from recipes.run.resume import AtomicCheckpointIO
from train import train

TINY = ("model=mlp", "model.hidden=[16]")
TORCH_FULL_DISK = "[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/0: file write failed"
Usage = namedtuple("Usage", "total used free")


# ----- a full disk ----------------------------------------------------------------------------------
def raise_on_save(err: BaseException):
    def save(obj, f, *args, **kwargs):
        f.write(b"x" * 1000)  # part of the checkpoint is written, then the disk is full
        raise err

    return save


def test_pytorchs_failed_write_on_a_full_disk_is_one_message_and_the_previous_checkpoint_survives(tmp_path, monkeypatch):
    """A full disk reaches ``torch.save`` as a RuntimeError from its stream writer, not as an OSError."""
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", raise_on_save(RuntimeError(TORCH_FULL_DISK)))
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: Usage(2**30, 2**30 - 2**20, 2**20))  # 1 MiB free
    with pytest.raises(RunError) as err:
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert str(err.value) == (
        f"checkpoint: no space left on the device writing {path} (1 MiB free); free some space or write checkpoints "
        f"elsewhere with callbacks.model_checkpoint.dirpath=<folder>. {path} keeps the previous checkpoint."
    )
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # the partial temporary file is gone


def test_pytorchs_failed_write_with_space_left_names_pytorchs_reason_and_the_free_space(tmp_path, monkeypatch):
    path = tmp_path / "best.ckpt"
    monkeypatch.setattr(torch, "save", raise_on_save(RuntimeError(TORCH_FULL_DISK)))
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: Usage(2**40, 2**39, 2**39))  # 512 GiB free
    with pytest.raises(RunError) as err:
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, path)
    assert str(err.value).startswith(
        f"checkpoint: cannot write {path} (PyTorch: [enforce fail at inline_container.cc:778] . PytorchStreamWriter "
        "failed writing file data/0: file write failed; 524288 MiB free); choose a writable folder with "
        "callbacks.model_checkpoint.dirpath=<folder>"
    )
    assert str(err.value).endswith("no earlier checkpoint was touched.")


def test_another_runtime_error_while_saving_is_not_taken_for_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", raise_on_save(RuntimeError("a bug in a hook")))
    with pytest.raises(RuntimeError, match="^a bug in a hook$") as err:
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, tmp_path / "last.ckpt")
    assert not isinstance(err.value, RunError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["hparams.yaml", "metrics.csv"])
def test_a_full_disk_under_the_csv_logger_is_one_run_error_naming_the_file(smoke_config, tmp_path, name):
    """A real ENOSPC from the kernel: the CSV file is a link to /dev/full. hparams.yaml is written as the run starts,
    metrics.csv when the logger flushes (at the end of fit on a smoke run)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / name).symlink_to("/dev/full")
    with pytest.raises(RunError) as err:
        train(smoke_config(*TINY, "test=false"))
    message = str(err.value)
    where = f"csv logger: no space left on the device writing {tmp_path / 'csv' / name} ("
    assert message.startswith(where), message
    assert message[len(where) :].split(" ", 1)[0].isdigit()  # the free space, in MiB
    assert message.endswith(
        " MiB free); free some space, or write the run elsewhere with hydra.run.dir=<folder> "
        "(or logger.csv.save_dir=<folder>)"
    )


def test_a_full_disk_where_the_run_folder_goes_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """The probe ``CheckOutputDir`` and the checkpoint-folder check write must need space: creating an empty file
    succeeds on a full disk. Here the probe file is /dev/full, which refuses every write with ENOSPC."""
    import tempfile

    from recipes.run.launch import writable_folder_error

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    assert writable_folder_error(tmp_path) is None
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", lambda **kwargs: open("/dev/full", "wb"))  # noqa: SIM115
    assert writable_folder_error(tmp_path) == "No space left on device"
