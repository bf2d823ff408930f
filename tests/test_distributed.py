"""DDP on two CPU processes (gloo) reproduces one process; ranks share one run folder; SLURM and FSDP configs."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch

from recipes.models import MLP
from tests.helpers.configs import compose_config
from tests.helpers.runs import run_train, weights
from train import train

# no dropout, no augmentation: one process on a batch of 32 and two on 16 each do the same arithmetic.
# The whole validation and test sets (500 each) in one batch per process, so synced metrics cover them.
RUN = (
    "debug=smoke",
    "model=mlp",
    "model.hidden=[32]",
    "model.dropout=0.0",
    "data.shift=0",
    "trainer.limit_train_batches=4",
    "trainer.max_epochs=2",
    "trainer.limit_val_batches=1.0",
    "trainer.limit_test_batches=1.0",
)


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def last_value(table: list[dict[str, str]], key: str) -> float:
    return float([row[key] for row in table if row.get(key)][-1])


@pytest.fixture(scope="module")
def ddp_and_single(tmp_path_factory, data_dir):
    """``trainer=ddp_cpu`` (2 x batch 16) as a user runs it, as a one-job multirun in the default sweep folder,
    and one in-process run on batch 32."""
    root = tmp_path_factory.mktemp("ddp")
    result = run_train(
        "-m",
        *RUN,
        "trainer=ddp_cpu",
        "data.batch_size=16",
        "data.eval_batch_size=250",
        "loss=ce",
        f"paths.log_dir={root / 'logs'}",
        env_extra={"DATA_DIR": str(data_dir)},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    sweeps = list((root / "logs" / "classification" / "multiruns").iterdir())
    single = root / "single"
    metrics = train(compose_config([*RUN, "data.batch_size=32", "data.eval_batch_size=500"], single, data_dir))
    return sweeps, single, metrics, result


def test_ddp_on_two_cpu_processes_ends_with_the_weights_of_one_process_on_the_global_batch(ddp_and_single):
    (sweep, *_), single, _, _ = ddp_and_single
    ddp_run = sweep / "0"
    ddp, one = weights(ddp_run / "checkpoints" / "last.ckpt"), weights(single / "checkpoints" / "last.ckpt")
    assert set(ddp) == set(one)
    assert max((ddp[k] - one[k]).abs().max().item() for k in one) < 1e-5
    assert torch.load(single / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    L.seed_everything(0)  # the untrained network, as train() builds it: training moved it far more than 1e-5
    initial = {f"model.{k}": v for k, v in MLP(in_features=[1, 28, 28], num_outputs=10, hidden=[32]).state_dict().items()}
    assert max((initial[k] - one[k]).abs().max().item() for k in initial) > 1e-3


def test_ddp_metrics_are_synced_over_both_processes(ddp_and_single):
    """Each process sees half of the validation and test sets; the logged values cover all of them."""
    (sweep, *_), _, single, _ = ddp_and_single
    table = rows(sweep / "0")
    for key in ("val/acc", "test/acc", "test/ece"):
        assert last_value(table, key) == pytest.approx(single[key], abs=1e-6), key
    for key in ("val/loss", "val/nll", "test/loss", "test/nll"):
        assert last_value(table, key) == pytest.approx(single[key], rel=1e-5), key


def test_ddp_ranks_share_one_folder_and_only_rank_zero_writes_outputs(ddp_and_single):
    """Lightning restarts ranks > 0 with this command line, which holds -m: they must run this job in its
    folder, not the sweep again (which would make a second sweep folder a second later)."""
    sweeps, _, _, result = ddp_and_single
    assert len(sweeps) == 1, sweeps
    assert sorted(p.name for p in sweeps[0].iterdir()) == ["0", "multirun.yaml"]
    run = sweeps[0] / "0"
    assert (run / "train_ddp_process_1.log").exists()  # rank 1 ran, in this folder
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".hydra")) == [".hydra"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    steps = [row["step"] for row in rows(run) if row.get("train/loss")]  # step rows (debug=smoke logs every step)
    assert len(steps) == len(set(steps)) == 8  # one row per step: rank 1 logged nothing
    assert result.stderr.count("error:") == 0


def test_ddp_test_images_count_the_test_examples_of_both_processes(ddp_and_single):
    """The confusion matrix and reliability bins are synced metrics: rank 0 draws all 500 test examples."""
    sweeps, single, _, _ = ddp_and_single
    for run in (sweeps[0] / "0", single):
        with open(run / "images" / "test_confusion_matrix.csv") as f:
            assert sum(int(v) for row in csv.DictReader(f) for k, v in row.items() if k != "true") == 500, run
        with open(run / "images" / "test_reliability.csv") as f:
            assert sum(int(row["count"]) for row in csv.DictReader(f)) == 500, run
    assert (sweeps[0] / "0" / "images" / "test_confident_mistakes.png").exists()


# ----- configs that need hardware this machine lacks: composed and checked, not run ----------------
def test_slurm_launcher_config_writes_a_multi_node_sbatch_script(make_config, tmp_path, monkeypatch):
    import submitit
    from hydra.utils import get_class
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # pretend `srun` is installed

    cfg = compose_slurm(make_config, tmp_path)
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert cfg.trainer.num_nodes == 2 and cfg.trainer.strategy == "ddp" and cfg.trainer.sync_batchnorm

    params = {k: v for k, v in launcher.items() if k not in ("_target_", "submitit_folder", "max_num_timeout")}
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(**{k if k in BASE_KEYS else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python train.py", "0")
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu", "--time=240"):
        assert f"#SBATCH {line}" in script, line


BASE_KEYS = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name", "stderr_to_stdout"}


def compose_slurm(make_config, tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tests.helpers.configs import CONFIGS

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                "hydra/launcher=slurm",
                "trainer=ddp",
                "trainer.num_nodes=2",
                "hydra.launcher.gpus_per_node=4",
                "hydra.launcher.partition=gpu",
                f"hydra.sweep.dir={tmp_path}",
                "hydra.job.name=train",
            ],
            return_hydra_config=True,
        )
    return cfg


@pytest.mark.parametrize("trainer", ["ddp", "fsdp"])
def test_gpu_strategies_compose_and_are_refused_on_a_machine_without_cuda(make_config, trainer):
    from losses import ConfigError
    from recipes.run.checks import check_config

    cfg = make_config(f"trainer={trainer}")
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.sync_batchnorm
    if trainer == "fsdp":
        assert cfg.trainer.strategy._target_.endswith("FSDPStrategy") and cfg.trainer.strategy.state_dict_type == "full"
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        check_config(cfg)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (("trainer=fsdp", "trainer.accelerator=cpu"), "trainer.strategy: FSDP runs on GPUs only"),
        (("trainer=ddp_cpu", "trainer.sync_batchnorm=true"), "trainer.sync_batchnorm: PyTorch's SyncBatchNorm runs on GPUs only"),
    ],
)
def test_gpu_only_options_on_cpu_processes_are_refused_before_anything_starts(make_config, overrides, message):
    from losses import ConfigError
    from recipes.run.checks import check_config

    with pytest.raises(ConfigError, match=message):
        check_config(make_config(*overrides))


def test_ddp_on_a_streamed_folder_splits_one_order_over_the_ranks_as_one_process_on_the_global_batch(tmp_path, data_dir):
    """Each rank streams its own shard of the seeded order, each sample cropped and flipped by its own seed: two
    processes on 3 images each end with the weights of one process on the same 6 (a shared shard would not)."""
    from tests.helpers.folders import first_digits, write_image_folder

    folder = write_image_folder(tmp_path / "digits", first_digits(), splits=("train", "val"))
    run = (
        "debug=smoke", "model=mlp", "model.hidden=[32]", "model.dropout=0.0", "data=image_folder", f"data.root={folder}",
        "data.image_size=16", "data.storage=stream", "data.augment=crop_flip", "trainer.limit_train_batches=3",
        "trainer.max_epochs=2", "data.eval_batch_size=8",
    )  # fmt: skip
    result = run_train(*run, "trainer=ddp_cpu", "data.batch_size=3", f"hydra.run.dir={tmp_path / 'ddp'}",
                       env_extra={"DATA_DIR": str(data_dir)})  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    train(compose_config([*run, "data.batch_size=6"], tmp_path / "single", data_dir))
    ddp, one = weights(tmp_path / "ddp" / "checkpoints" / "last.ckpt"), weights(tmp_path / "single" / "checkpoints" / "last.ckpt")
    assert max((ddp[k] - one[k]).abs().max().item() for k in one) < 1e-5
    assert torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


@pytest.mark.parametrize("rank", [None, 0, 1], ids=["every_rank", "rank_0_only", "rank_1_only"])
def test_sigterm_under_ddp_stops_every_rank_after_the_same_batch_and_resumes_exactly(tmp_path, data_dir, rank):
    """Lightning's own handler broadcast from inside the signal handler and forwarded the signal to rank 1, so a rank
    signalled by the scheduler too ran two broadcasts to rank 0's one: the run hung for ever (every_rank)."""
    stopped, env = tmp_path / "stopped", {"DATA_DIR": str(data_dir)}
    term = ("+callbacks.term._target_=tests.crash.TermAtStep", "+callbacks.term.step=3")
    term += (f"+callbacks.term.rank={rank}",) if rank is not None else ()
    result = run_train(*RUN, "trainer=ddp_cpu", f"hydra.run.dir={stopped}", *term, env_extra=env, timeout=200)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stopped by SIGTERM; its state at step 3 is saved" in errors[0], errors
    assert torch.load(stopped / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    if rank != 1:
        return
    resumed = run_train(*RUN, "trainer=ddp_cpu", f"hydra.run.dir={stopped}", "ckpt_path=last", env_extra=env)
    whole = run_train(*RUN, "trainer=ddp_cpu", f"hydra.run.dir={tmp_path / 'whole'}", env_extra=env)
    assert resumed.returncode == 0 and whole.returncode == 0, resumed.stderr[-3000:] + whole.stderr[-3000:]
    ours, theirs = weights(stopped / "checkpoints" / "last.ckpt"), weights(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_sigterm_in_a_ddp_test_stops_both_ranks_with_the_eval_command(tmp_path, data_dir):
    term = ("+callbacks.term._target_=tests.crash.TermAtStep", "+callbacks.term.stage=test", "trainer.limit_test_batches=3")
    result = run_train(*RUN, "trainer=ddp_cpu", f"hydra.run.dir={tmp_path}", *term, env_extra={"DATA_DIR": str(data_dir)})
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].endswith(f"Test it with: python eval.py ckpt_path={tmp_path}/checkpoints/best.ckpt")
