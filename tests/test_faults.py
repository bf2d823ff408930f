"""Faults around a run's files: a full disk (checkpoints, CSV logs), a resume with changed settings, a checkpoint
that does not fit the network."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from losses.errors import ConfigError
from recipes.run.errors import RunError
from recipes.run.resume import AtomicCheckpointIO
from tests.helpers.configs import compose_config
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
        " MiB free); free some space, or write the run elsewhere with hydra.run.dir=<folder> (or logger.csv.save_dir=<folder>)"
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


# ----- a resume with changed settings ---------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> Path:
    """The last.ckpt of a smoke run: mlp with one hidden layer of 16, cross-entropy, batch size 32, seed 0."""
    folder = tmp_path_factory.mktemp("trained")
    train(compose_config(["debug=smoke", *TINY, "test=false"], folder, data_dir))
    return folder / "checkpoints" / "last.ckpt"


def resume_config(ckpt: Path, folder: Path, data: Path, *overrides: str):
    return compose_config(["debug=smoke", *TINY, "test=false", f"ckpt_path={ckpt}", *overrides], folder, data)


def test_every_checkpoint_records_the_settings_its_training_depends_on(trained):
    settings = torch.load(trained, weights_only=True)["run_settings"]
    assert settings["task"] == "classification" and settings["seed"] == 0
    assert settings["data.batch_size"] == 32 and settings["model.hidden"] == [16]
    assert settings["loss.name"] == "ce" and settings["loss.label_smoothing"] == 0.0
    assert settings["task.optimizer.lr"] == 0.003
    assert not [key for key in settings if key.endswith("data_dir")]  # where data lives may change


def test_a_resume_with_another_batch_size_is_refused_with_the_change_before_data_loads(trained, tmp_path):
    fresh_data = tmp_path / "data"
    with pytest.raises(ConfigError) as err:
        train(resume_config(trained, tmp_path / "run", fresh_data, "data.batch_size=64"))
    assert str(err.value) == (
        "ckpt_path: the checkpoint was trained with data.batch_size=32, this run has 64. A resumed run continues "
        f"exactly only with the settings it was trained with (they are in {trained} and in its run folder's "
        ".hydra/config.yaml): resume with them, or set resume_changed=allow to continue anyway"
    )
    assert not fresh_data.exists()  # refused before the data was read


@pytest.mark.parametrize(
    ("overrides", "changes"),
    [
        (["loss.label_smoothing=0.1"], ["loss.label_smoothing=0.0, this run has 0.1"]),
        (["loss=focal"], ["loss.name=ce, this run has focal", "no loss.gamma, this run has loss.gamma=2.0"]),
        (["seed=1", "task.optimizer.lr=0.01"], ["task.optimizer.lr=0.003, this run has 0.01", "seed=0, this run has 1"]),
        (["model.hidden=[32]"], ["model.hidden=[16], this run has [32]"]),
    ],
)
def test_a_resume_with_another_loss_model_seed_or_learning_rate_is_refused_with_each_change(
    trained, tmp_path, overrides, changes
):
    with pytest.raises(ConfigError) as err:
        train(resume_config(trained, tmp_path / "run", tmp_path / "data", *overrides))
    message = str(err.value)
    assert message.startswith("ckpt_path: the checkpoint was trained with ")
    for change in changes:
        assert change in message, message
    assert message.endswith("set resume_changed=allow to continue anyway")


def test_resume_changed_allow_continues_with_a_warning_that_lists_the_changes(trained, tmp_path, data_dir):
    with pytest.warns(UserWarning, match=r"resume_changed=allow.*data\.batch_size=32, this run has 16$"):
        train(resume_config(trained, tmp_path, data_dir, "data.batch_size=16", "resume_changed=allow", "trainer.max_epochs=2"))
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 8  # 4 steps in the checkpoint, 4 more in the second epoch
    assert resumed["run_settings"]["data.batch_size"] == 16  # the resumed run records what it trained with


def test_a_checkpoint_without_the_record_resumes_with_a_warning(trained, tmp_path, data_dir):
    old = torch.load(trained, weights_only=True)
    del old["run_settings"]
    torch.save(old, tmp_path / "old.ckpt")
    with pytest.warns(UserWarning, match="holds no record of the settings it was trained with"):
        train(resume_config(tmp_path / "old.ckpt", tmp_path / "run", data_dir, "trainer.max_epochs=2"))
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8


def test_resume_changed_takes_refuse_or_allow(trained, tmp_path):
    with pytest.raises(ConfigError, match=r"^resume_changed: must be refuse or allow \(got 'yes'\)$"):
        train(resume_config(trained, tmp_path / "run", tmp_path / "data", "resume_changed=yes"))


# ----- a checkpoint that does not fit the network ------------------------------------------------------
FIX = (
    "It was written by another task or model (or another model size): use the task, model and data settings it was "
    "trained with (its run folder's .hydra/config.yaml), a checkpoint of this network, or ckpt_path=null to start afresh"
)


def test_a_checkpoint_of_another_width_is_one_message_listing_the_shapes_before_data_loads(trained, tmp_path):
    fresh_data = tmp_path / "data"
    cfg = resume_config(trained, tmp_path / "run", fresh_data, "model.hidden=[32]", "resume_changed=allow")
    with pytest.warns(UserWarning, match="model.hidden=\\[16\\], this run has \\[32\\]"), pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value) == (
        f"ckpt_path: {trained} does not fit the ClassificationTask this config builds: 3 of another shape "
        "(model.features.1.weight [16, 784] in the checkpoint, [32, 784] here, model.features.1.bias [16] in the "
        f"checkpoint, [32] here, model.head.weight [10, 16] in the checkpoint, [10, 32] here). {FIX}"
    )
    assert not fresh_data.exists()


def test_a_checkpoint_of_another_depth_lists_the_missing_weights(trained, tmp_path):
    cfg = resume_config(trained, tmp_path / "run", tmp_path / "data", "model.hidden=[16,16]", "resume_changed=allow")
    with pytest.warns(UserWarning), pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value).endswith(
        f"does not fit the ClassificationTask this config builds: 2 weights missing (model.features.4.weight, "
        f"model.features.4.bias). {FIX}"
    )


def test_a_checkpoint_of_another_task_lists_the_weights_this_network_does_not_have(trained, tmp_path):
    foreign = torch.load(trained, weights_only=True)
    foreign["state_dict"] = {f"student.{k}": v for k, v in foreign["state_dict"].items()}  # e.g. a distilled student
    torch.save(foreign, tmp_path / "foreign.ckpt")
    with pytest.raises(ConfigError) as err:
        train(resume_config(tmp_path / "foreign.ckpt", tmp_path / "run", tmp_path / "data"))
    assert str(err.value) == (
        f"ckpt_path: {tmp_path / 'foreign.ckpt'} does not fit the ClassificationTask this config builds: 4 weights "
        "missing (model.features.1.weight, model.features.1.bias, model.head.weight and 1 more); 4 weights this network "
        f"does not have (student.model.features.1.weight, student.model.features.1.bias, student.model.head.weight and "
        f"1 more). {FIX}"
    )


@pytest.mark.parametrize("fit", ["true", "false"])
def test_a_checkpoint_without_weights_is_refused_for_training_and_for_testing(trained, tmp_path, fit):
    empty = torch.load(trained, weights_only=True)
    empty["state_dict"] = {}
    torch.save(empty, tmp_path / "empty.ckpt")
    with pytest.raises(ConfigError) as err:
        train(resume_config(tmp_path / "empty.ckpt", tmp_path / "run", tmp_path / "data", f"fit={fit}", "test=true"))
    assert str(err.value) == (
        f"ckpt_path: {tmp_path / 'empty.ckpt'} does not fit the ClassificationTask this config builds: it holds no "
        f"weights (an empty state_dict). {FIX}"
    )
    assert not (tmp_path / "data").exists()
