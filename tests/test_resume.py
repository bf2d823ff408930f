"""Exact resume after a kill, atomic checkpoints, W&B resuming its run, and checkpoints that load with weights_only."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from recipes.run.errors import RunError
from recipes.run.resume import AtomicCheckpointIO, ResumableSampler, read_checkpoint
from tests.helpers.configs import ROOT, compose_config
from tests.helpers.runs import run_train, weights
from tests.helpers.sizes import RESUME_RUN
from train import train

RUN = RESUME_RUN
KILL_AT = 10  # step 10 of 12 is in the second epoch; the last checkpoint before it is step 8


@pytest.fixture(scope="module")
def killed_and_uninterrupted(tmp_path_factory, data_dir):
    """A run SIGKILLed at step 10 (subprocess, W&B offline), a copy of its folder, and the run uninterrupted."""
    import shutil

    root = tmp_path_factory.mktemp("resume")
    killed = root / "killed"
    result = run_train(
        *RUN,
        "logger=wandb",
        "logger.wandb.mode=offline",
        f"hydra.run.dir={killed}",
        "+callbacks.crash._target_=tests.crash.KillAtStep",
        f"+callbacks.crash.step={KILL_AT}",
        env_extra={"DATA_DIR": str(data_dir)},
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    shutil.copytree(killed, root / "killed_copy")
    uninterrupted = root / "uninterrupted"
    metrics = train(compose_config(list(RUN), uninterrupted, data_dir))
    return killed, root / "killed_copy", uninterrupted, metrics


def test_a_run_killed_mid_epoch_resumes_to_the_same_weights_metrics_and_wandb_run(killed_and_uninterrupted, data_dir):
    from recipes.run.loggers import finish_wandb

    killed, _, uninterrupted, expected = killed_and_uninterrupted
    saved = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 8  # steps 9 and 10 were trained, then lost with the kill
    assert saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"] == 2  # mid-epoch

    try:
        metrics = train(compose_config([*RUN, "logger=wandb", "logger.wandb.mode=offline", "ckpt_path=last"], killed, data_dir))
    finally:
        finish_wandb()

    for key in ("val/acc", "val/loss", "val/nll", "test/acc", "test/loss", "test/ece"):
        assert metrics[key] == expected[key], key
    ours, theirs = weights(killed / "checkpoints" / "last.ckpt"), weights(uninterrupted / "checkpoints" / "last.ckpt")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    final = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == 12
    runs = sorted((killed / "wandb").glob("offline-run-*"))
    ids = {run.name.rsplit("-", 1)[1] for run in runs}
    assert len(runs) == 2 and ids == {final["wandb_id"]}, runs  # two offline folders of one W&B run


def test_without_the_rng_states_the_resumed_run_would_differ(killed_and_uninterrupted, data_dir, monkeypatch):
    """The control: restoring the checkpoint without the RNG states does not reproduce the uninterrupted run."""
    from recipes.run.resume import ExactResume

    _, copy, uninterrupted, _ = killed_and_uninterrupted
    monkeypatch.setattr(ExactResume, "on_train_start", lambda *args: None)
    train(compose_config([*RUN, "ckpt_path=last"], copy, data_dir))
    ours, theirs = weights(copy / "checkpoints" / "last.ckpt"), weights(uninterrupted / "checkpoints" / "last.ckpt")
    assert not all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_the_sampler_skips_the_batches_already_trained_and_splits_ranks_like_one_process():
    dataset = TensorDataset(torch.arange(20))
    done = [0]
    one = ResumableSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=3, consumed=lambda: done[0])
    one.set_epoch(1)
    order = list(one)
    assert sorted(order) == list(range(20)) and order != list(range(20))
    done[0] = 8
    assert list(one) == order[8:]  # a restart after 8 samples continues with the 9th
    two = [ResumableSampler(dataset, num_replicas=2, rank=r, shuffle=True, seed=3, consumed=lambda: 0) for r in (0, 1)]
    for sampler in two:
        sampler.set_epoch(1)
    batches = [list(b) for b in (DataLoader(dataset, batch_size=2, sampler=s) for s in two)]
    first_global_batch = sorted(int(x) for loader in batches for x in loader[0][0])
    assert first_global_batch == sorted(order[:4])  # 2 ranks x 2 samples = one process's batch of 4


# ----- atomic writes ------------------------------------------------------------------------------
KILL_DURING_SAVE = """
import os, signal, sys, torch
from recipes.run.resume import AtomicCheckpointIO
path = sys.argv[1]
real_save = torch.save
def save_then_die(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    f.flush()
    f.truncate(f.tell() // 2)          # half of the new checkpoint is on disk...
    os.kill(os.getpid(), signal.SIGKILL)  # ...when the process is killed
torch.save = save_then_die
AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.full((1000,), 2.0)}}, path)
"""


def test_a_kill_while_saving_leaves_the_previous_last_checkpoint_whole(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(1000)}}, path)
    result = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SAVE, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # the half-written file is beside it
    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], torch.ones(1000))
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # the next save cleared the leftover


def test_a_full_disk_on_checkpoint_write_is_one_message_and_the_previous_checkpoint_survives(smoke_config, tmp_path, monkeypatch):
    train(smoke_config("model=mlp", "model.hidden=[16]", "trainer.max_epochs=2", "test=false"))  # writes last.ckpt
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(RunError) as err:  # the resumed run's first checkpoint meets a full disk
        train(smoke_config("model=mlp", "model.hidden=[16]", "trainer.max_epochs=3", "test=false", "ckpt_path=last"))
    message = str(err.value)
    assert "no space left on the device writing" in message and "callbacks.model_checkpoint.dirpath" in message
    assert "keeps the previous checkpoint" in message
    assert last.read_bytes() == before
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".tmp")]


def test_checkpoints_hold_only_what_weights_only_loading_accepts(smoke_config, tmp_path):
    train(smoke_config("model=mlp", "model.hidden=[16]"))
    for path in (tmp_path / "checkpoints").glob("*.ckpt"):
        checkpoint = torch.load(path, weights_only=True)  # raises on any pickled class
        assert checkpoint["hyper_parameters"]["num_classes"] == 10
        assert {"seed", "rng"} <= set(checkpoint["callbacks"]["ExactResume"])
