"""A run folder belongs to one run: no run over another's checkpoints, one live run at a time, and SIGTERM
saves an exact-resume checkpoint and exits 1 with the command that resumes."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap

import pytest
import torch

from losses.errors import ConfigError
from recipes.run.folder import LOCK_NAME, lock_run_folder, resume_command, unlock_run_folder
from tests.helpers.configs import compose_config
from tests.helpers.runs import run_train, weights
from tests.helpers.sizes import RESUME_RUN
from train import train

RUN = RESUME_RUN
TERM_AT = 10  # step 10 of 12, in the second epoch; the last step checkpoint before it is step 8


def test_sigterm_saves_the_step_it_stopped_at_exits_1_and_resumes_to_the_uninterrupted_weights(tmp_path, data_dir):
    stopped = tmp_path / "stopped"
    result = run_train(
        *RUN,
        f"hydra.run.dir={stopped}",
        "+callbacks.term._target_=tests.crash.TermAtStep",
        f"+callbacks.term.step={TERM_AT}",
        env_extra={"DATA_DIR": str(data_dir)},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stopped by SIGTERM" in errors[0] and f"at step {TERM_AT}" in errors[0]
    assert f"ckpt_path=last hydra.run.dir={stopped}" in errors[0]
    saved = torch.load(stopped / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == TERM_AT  # the state at the signal, not the step checkpoint before it (8)

    resumed = train(compose_config([*RUN, "ckpt_path=last"], stopped, data_dir))
    expected = train(compose_config(list(RUN), tmp_path / "uninterrupted", data_dir))
    ours = weights(stopped / "checkpoints" / "last.ckpt")
    theirs = weights(tmp_path / "uninterrupted" / "checkpoints" / "last.ckpt")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    for key in ("val/acc", "test/acc", "test/loss"):
        assert resumed[key] == expected[key], key


@pytest.mark.parametrize("stage", ["train", "test"])
def test_sigterm_in_a_sweeps_first_job_saves_it_starts_no_other_job_and_says_how_to_go_on(tmp_path, data_dir, stage):
    """A grid of three jobs in one process (Hydra's basic launcher); the first is sent SIGTERM at step 3 of its
    training, or in its test."""
    sweep = tmp_path / "sweep"
    term = ("+callbacks.term._target_=tests.crash.TermAtStep", "+callbacks.term.step=3", f"+callbacks.term.stage={stage}")
    result = run_train("-m", *RUN, "seed=0,1,2", *term, f"hydra.sweep.dir={sweep}", env_extra={"DATA_DIR": str(data_dir)})
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    job, checkpoints = sweep / "0", sweep / "0" / "checkpoints"
    jobs = [[*RUN, f"seed={seed}", *term] for seed in range(3)]  # each job's overrides, in the command's order
    overrides = [" ".join(words) for words in jobs]
    if stage == "train":
        resume = shlex.join(["python", "train.py", *jobs[0], "ckpt_path=last", f"hydra.run.dir={job}"])
        then = f"its state at step 3 is saved in {checkpoints / 'last.ckpt'}. Resume it with: {resume}"
        assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 3
    else:
        best = checkpoints / "best.ckpt"
        then = f"it was testing {best}. Test it with: {shlex.join(['python', 'eval.py', f'ckpt_path={best}'])}"
    assert errors == [
        f"error: the sweep in {sweep} was stopped by SIGTERM in job 0 ({overrides[0]}); {then}. 2 jobs did not run: "
        f"job 1 ({overrides[1]}), job 2 ({overrides[2]})."
    ]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0"]  # jobs 1 and 2 never started
    assert not (job / "error.txt").exists()  # stopped, not failed


def test_a_new_run_in_a_finished_runs_folder_is_refused_and_leaves_its_checkpoints(tmp_path, data_dir, capsys):
    from train import run

    folder = tmp_path / "run"
    train(compose_config(["debug=smoke", "model=mlp", "model.hidden=[16]"], folder, data_dir))
    before = {p.name: p.read_bytes() for p in (folder / "checkpoints").iterdir()}
    with pytest.raises(SystemExit) as exit_:
        run(compose_config(["debug=smoke", "model=mlp", "model.hidden=[16]", "seed=1"], folder, data_dir))
    assert exit_.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and f"{folder} holds another run's checkpoints (best.ckpt, last.ckpt)" in error[0]
    assert "ckpt_path=last" in error[0] and "overwrite=true" in error[0]
    assert {p.name: p.read_bytes() for p in (folder / "checkpoints").iterdir()} == before


def test_overwrite_true_lets_a_new_run_replace_the_checkpoints(tmp_path, data_dir):
    folder = tmp_path / "run"
    train(compose_config(["debug=smoke", "model=mlp", "model.hidden=[16]"], folder, data_dir))
    first = weights(folder / "checkpoints" / "last.ckpt")
    train(compose_config(["debug=smoke", "model=mlp", "model.hidden=[16]", "seed=1", "overwrite=true"], folder, data_dir))
    second = weights(folder / "checkpoints" / "last.ckpt")
    assert not all(torch.equal(first[k], second[k]) for k in first)  # another seed: other weights


HOLD_LOCK = """
import fcntl, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX)
handle.write("pid 4242\\n"); handle.flush()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_folder_held_by_a_live_run_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD_LOCK), str(tmp_path / LOCK_NAME)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=rf"{tmp_path} is in use by a live run \(pid 4242\)"):
            lock_run_folder(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    lock_run_folder(tmp_path)  # the holder is gone: the kernel released its lock
    try:
        assert (tmp_path / LOCK_NAME).read_text().startswith("pid ")
    finally:
        unlock_run_folder(tmp_path)


def test_the_resume_command_quotes_what_a_shell_would_split(tmp_path):
    folder = tmp_path / "a run"
    command = resume_command(folder)  # this run's overrides (if Hydra launched it), then the two that resume
    assert command.startswith("python train.py ") and command.endswith(f" ckpt_path=last 'hydra.run.dir={folder}'")
