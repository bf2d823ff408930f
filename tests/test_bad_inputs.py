"""The bad-input table of docs/reliability.md: each input gives one message naming the setting and the fix,
a non-zero exit status, and leaves the outputs of earlier runs as they were."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException

from tests.helpers.configs import CONFIGS, ROOT, compose_config
from tests.helpers.data import write_fake_mnist
from tests.helpers.runs import run_train
from train import run, train

TINY = ("debug=smoke", "model=mlp", "model.hidden=[16]")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its content hash (train.log aside: Hydra appends each attempt's log)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "train.log"
    }


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory, data_dir) -> Path:
    """A finished run (checkpoints, metrics, config) in ``<tmp>/logs/classification/runs/earlier``."""
    logs = tmp_path_factory.mktemp("bad") / "logs"
    folder = logs / "classification" / "runs" / "earlier"
    train(compose_config(list(TINY), folder, data_dir))
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text("# the earlier run's config\n")
    return folder


def run_and_expect(cfg, capsys, status: int) -> str:
    """``train.run``: the exit status, and the one ``error:`` line it printed."""
    with pytest.raises(SystemExit) as exit_:
        run(cfg)
    assert exit_.value.code == status
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    return errors[0]


# ----- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("group", ["task", "loss", "data", "model", "trainer", "logger"])
def test_an_unknown_option_name_lists_the_options_of_its_group(group):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"), pytest.raises(MissingConfigException) as err:
        compose(config_name="train", overrides=[f"{group}=nope"])
    message = str(err.value)
    assert f"Could not find '{group}/nope'" in message and f"Available options in '{group}'" in message
    assert sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))[0] in message


def test_train_py_with_an_unknown_task_exits_non_zero_and_leaves_earlier_runs_alone(earlier_run, data_dir):
    before = snapshot(earlier_run)
    result = run_train("task=nope", f"paths.log_dir={earlier_run.parents[2]}", env_extra={"DATA_DIR": str(data_dir)})
    assert result.returncode == 2
    assert result.stderr.startswith("error: task: there is no option 'nope' (the options are classification, detection")
    assert snapshot(earlier_run) == before
    assert [p.name for p in earlier_run.parent.iterdir()] == ["earlier"]  # no run folder was made


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["optimizer=adamm"], "error: optimizer: there is no such setting (got optimizer=adamm); did you mean task.optimizer"),
        (
            ["task.optimizer.lrr=0.1"],
            "error: task.optimizer.lrr: there is no such setting (got task.optimizer.lrr=0.1); did you mean task.optimizer.lr,",
        ),
        (["lr=0.1"], "error: lr: there is no such setting (got lr=0.1); did you mean task.optimizer.lr?"),
        (["loss=focal", "loss.gama=2"], "error: loss.gama: there is no such setting (got loss.gama=2); did you mean loss.gamma,"),
        (
            ["trainer.max_time=00:00:01:00"],
            "error: trainer.max_time: the config does not list this setting, but it is an argument of lightning.Trainer; "
            "add it with +trainer.max_time=00:00:01:00",
        ),
        (
            ["task=clasification"],
            "error: task: there is no option 'clasification' (the options are classification, detection, distillation, "
            "regression, segmentation, siamese, simclr, vae); did you mean classification?",
        ),
        (
            ["callbacks=nonexistent"],
            "error: callbacks: there is no option 'nonexistent' (the options are default, early_stopping,",
        ),
        (["+seed=3"], "error: Could not append to config. An item is already at 'seed'. Either remove + prefix: 'seed=3'"),
        (["seed=0,1"], "error: Ambiguous value for argument 'seed=0,1' 1. To use it as a list, use key=[value1,value2]"),
        (["debug=smoke=3"], "error: debug=smoke=3: Hydra cannot parse this override:"),
    ],
    ids=[
        "group_as_key",
        "misspelt_key",
        "bare_name",
        "key_of_the_chosen_loss",
        "unlisted_trainer_argument",
        "misspelt_option",
        "missing_option",
        "plus_on_a_key",
        "comma_without_multirun",
        "unparsable",
    ],
)
def test_an_override_hydra_cannot_compose_is_one_message_with_a_did_you_mean_and_status_2(tmp_path, overrides, message):
    """Hydra's own report is six lines, exit 1, and names no key that was meant (``optimizer`` is ``task.optimizer``)."""
    result = run_train(*overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "run").exists()  # nothing was started


def test_a_failure_after_composition_still_gets_hydras_own_report(tmp_path):
    """Only composition errors are rewritten: a constructor failing in the job is reported by Hydra as before."""
    crash = ("+callbacks.crash._target_=builtins.open", "+callbacks.crash.file=/nonexistent/x")
    result = run_train(*crash, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.startswith("Error executing job with overrides: ['+callbacks.crash._target_=builtins.open'")
    assert "Error in call to target 'io.open':\nFileNotFoundError" in result.stderr, result.stderr
    assert result.stderr.rstrip().endswith("Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.")


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["trainer.max_epochs=-1"],
            "error: trainer.max_epochs: -1 (no limit) with no trainer.max_steps, but task.scheduler (OneCycleLR) spreads "
            "its total_steps over the run's length; give the run a length",
        ),
        (["trainer.max_steps=0"], "error: trainer: max_steps must be an integer >= 1, or -1 for no limit"),
        (["trainer.max_steps=-5"], "error: trainer: max_steps must be an integer >= 1, or -1 for no limit"),
    ],
    ids=["no_length", "zero_steps", "negative_steps"],
)
def test_a_run_without_a_length_under_a_step_schedule_is_refused_before_data_loads(make_config, capsys, overrides, message):
    """Before: OneCycleLR was built for 20 steps (the floor for an unknown length) and raised at step 21."""
    assert run_and_expect(make_config(*overrides), capsys, status=2).startswith(message)


def test_max_steps_gives_an_unlimited_epoch_count_its_length(make_config, tmp_path):
    """Two batches an epoch, three steps: the run goes into a second epoch and stops at step 3, schedule intact."""
    train(make_config(*TINY, "trainer.max_epochs=-1", "trainer.max_steps=3", "trainer.limit_train_batches=2"))
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3 and checkpoint["epoch"] >= 1


def test_an_unexpected_error_in_the_job_is_hydras_short_traceback_from_the_job_on(tmp_path, data_dir):
    """A bug is shown as Hydra shows it: its traceback from the task function on, not Hydra's own frames."""
    result = run_train(
        *TINY, "+callbacks.crash._target_=tests.crash.RaiseAtFitStart", f"hydra.run.dir={tmp_path}",
        env_extra={"DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error executing job with overrides:") and lines[1] == "Traceback (most recent call last):"
    assert 'train.py", line' in lines[2] and "in main" in lines[2], lines[:4]
    assert "RuntimeError: a bug in a callback" in result.stderr and "hydra/_internal" not in result.stderr


@pytest.mark.parametrize(
    "script,overrides,message",
    [
        ("eval.py", [], "error: ckpt_path: not set; give the checkpoint of a run that train.py wrote"),
        ("predict.py", ["ckpt_path=/nope.ckpt"], "error: input: not set; give input=IMAGE"),
    ],
)
def test_eval_and_predict_without_their_required_setting_say_which(tmp_path, script, overrides, message):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WANDB_MODE": "offline"}
    command = [sys.executable, script, *overrides, f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2 and result.stderr.startswith(message), result.stderr


def test_with_hydra_full_error_set_the_users_traceback_is_kept(tmp_path):
    result = run_train("optimizer=adamm", f"hydra.run.dir={tmp_path}", env_extra={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "ConfigCompositionException" in result.stderr


@pytest.mark.parametrize(
    "override,message",
    [
        ("model._target_=recipes.models.Resnet", "model._target_: cannot import 'recipes.models.Resnet'"),
        ("data._target_=recipes.data.nope.Data", "data._target_: cannot import 'recipes.data.nope.Data'"),
        ("data.dataset=svhn", "data 'mnist5k': dataset must be one of mnist5k, mnist, fashion_mnist, cifar10 (got 'svhn')"),
        ("data.batch_size=0", "data 'mnist5k': batch_size must be an integer >= 1 (got 0)"),
    ],
)
def test_a_bad_data_or_model_setting_is_one_message_and_status_2(make_config, capsys, override, message):
    assert message in run_and_expect(make_config(*TINY, override), capsys, 2)


# ----- loss settings that construct but fail in training ------------------------------------------
TEN = "[1,1,1,1,1,1,1,1,1,1]"  # one value per digit class
ELEVEN = "[1,1,1,1,1,1,1,1,1,1,1]"  # detection's softmax: 10 digits + background; segmentation: background + 10
ZEROS = TEN.replace("1", "0")
SOFTMAX_11 = "task.num_classes + 1: detection's softmax has a background class"

# each: the overrides of a setting a constructor accepts, and (part of) its one message; what the step would do
FAILS_IN_TRAINING = {
    # cross_entropy raises at the first step: 3 weights for 10 classes; detection's softmax also scores the background
    "ce-weight-length": (
        "loss=ce +loss.weight=[1,2,3]",
        "loss 'ce': weight must have one value per class: 10 (task.num_classes), not 3",
    ),
    "ce-weight-detection": (
        f"task=detection loss=ce +loss.weight={TEN}",
        f"loss 'ce': weight must have one value per class: 11 ({SOFTMAX_11}), not 10",
    ),
    "focal-alpha-length": ("loss=focal loss.alpha=[0.25,0.75]", "loss 'focal': alpha must have one value per class: 10"),
    # detection scores focal by sigmoids: 0/1 targets, where one alpha per class has no meaning
    "focal-alpha-sigmoid": (
        f"task=detection loss.alpha={TEN}",
        "loss 'focal': alpha must be one number in [0, 1] for 0/1 targets",
    ),
    "class-balanced-length": (
        "loss=class_balanced loss.samples_per_class=[100,10]",
        "loss 'class_balanced': samples_per_class must have one value per class: 10",
    ),
    "bce-pos-weight-length": (
        "loss=bce_logits +loss.pos_weight=[1,2,3]",
        "loss 'bce_logits': pos_weight must have one value per class",
    ),
    # torch's weighted mean divides by the targets' summed weights: 0/0
    "ce-weights-zero": (f"loss=ce +loss.weight={ZEROS}", "loss 'ce': weight must have a value > 0: with every class weighted 0"),
    "focal-alpha-zero": (f"loss=focal loss.alpha={ZEROS}", "loss 'focal': alpha must have a value > 0"),
    # Lightning cannot backpropagate a vector: every task but detection (which sets sum) trains on one number
    "reduction-none": (
        "loss.reduction=none",
        "loss.reduction: task 'classification' trains on one number per batch, but loss 'ce' with reduction 'none' "
        "gives one per sample; use loss.reduction=mean (or sum)",
    ),
    "reduction-none-segmentation": ("task=segmentation loss.reduction=none", "task 'segmentation' trains on one number"),
    "reduction-none-distillation": ("task=distillation loss.reduction=none", "use loss.reduction=batchmean (or mean, sum)"),
    "quantile-tau-twice": (
        "task=regression loss=quantile loss.tau=[0.1,0.5,0.5]",
        "loss 'quantile': tau must list each quantile once: [0.5] repeated",
    ),
    "nt-xent-temperature": ("task=simclr loss.temperature=1e-30", "loss 'nt_xent': temperature must be >= 0.0001"),
    "info-nce-temperature": (
        "task=simclr loss=info_nce loss.temperature=1e-30",
        "loss 'info_nce': temperature must be >= 0.0001",
    ),
    # kl_div and js_div take log-probabilities: the distillation task divides the logits by its temperature
    "kl-div-temperature": (
        "task=distillation task.temperature=1e-30",
        "task 'distillation': temperature must be >= 0.0001 (got 1e-30)",
    ),
    "js-div-temperature": (
        "task=distillation loss=js_div task.temperature=1e-30",
        "task 'distillation': temperature must be >= 0.0001",
    ),
    "dice-smooth": ("task=segmentation loss.smooth=1e30", "loss 'dice': smooth must be <= 10000"),
    "tversky-smooth": ("task=segmentation loss=tversky loss.smooth=1e30", "loss 'tversky': smooth must be <= 10000"),
    # only the classification task counts the training labels: detection's and segmentation's steps would raise
    "class-balanced-detection": (
        "task=detection loss=class_balanced",
        "loss.samples_per_class: null asks loss 'class_balanced' to count the training labels of each class, which "
        "task 'detection' does not (task classification does); set loss.samples_per_class=[...] "
        f"(11 counts: {SOFTMAX_11}), or use task=classification",
    ),
    "class-balanced-segmentation": (
        "task=segmentation loss=class_balanced",
        "task 'segmentation' does not (task classification does); set loss.samples_per_class=[...] (11 counts: task.num_classes)",
    ),
}


@pytest.mark.parametrize("overrides,message", list(FAILS_IN_TRAINING.values()), ids=list(FAILS_IN_TRAINING))
def test_a_loss_setting_that_would_fail_in_training_is_one_message_before_data_loads(tmp_path, capsys, overrides, message):
    fresh_data = tmp_path / "data"
    error = run_and_expect(compose_config(["debug=smoke", *overrides.split()], tmp_path / "run", fresh_data), capsys, 2)
    assert message in error, error
    assert not fresh_data.exists()  # the data was not read (mnist5k would be cached there)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(["loss=ce", f"+loss.weight={TEN}"], id="ce-ten-weights"),
        pytest.param(["task=detection", "loss=ce", f"+loss.weight={ELEVEN}"], id="detection-softmax-eleven-weights"),
        pytest.param(["task=detection", "loss=bce_logits", f"+loss.pos_weight={TEN}"], id="detection-sigmoid-ten"),
        pytest.param(["task=detection", "task.scores=softmax", f"loss.alpha={ELEVEN}"], id="detection-softmax-focal"),
        pytest.param(["task=detection", "loss.reduction=none"], id="detection-sets-sum-itself"),
        pytest.param(["task=segmentation", "loss=class_balanced", f"loss.samples_per_class={ELEVEN}"], id="seg-counts"),
        pytest.param(["loss=class_balanced"], id="classification-counts-the-labels"),
        pytest.param(["loss=bce_logits", "+loss.pos_weight=3"], id="one-pos-weight-for-every-class"),
        pytest.param(["loss=ce", "+loss.weight=[0,1,1,1,1,1,1,1,1,1]"], id="one-class-weighted-0"),
        pytest.param(["task=simclr", "loss.temperature=1e-4"], id="smallest-temperature"),
        pytest.param(["task=segmentation", "loss.smooth=1e4"], id="largest-smooth"),
    ],
)
def test_the_loss_settings_that_train_pass_the_check(make_config, overrides):
    from recipes.run.checks import check_config

    assert "loss" in check_config(make_config(*overrides))


# ----- checkpoints ---------------------------------------------------------------------------------
def test_a_missing_checkpoint_is_refused_before_data_loads(tmp_path, capsys):
    fresh_data = tmp_path / "data"
    cfg = compose_config([*TINY, f"ckpt_path={tmp_path / 'nope.ckpt'}"], tmp_path / "run", fresh_data)
    error = run_and_expect(cfg, capsys, 2)
    assert f"ckpt_path: {tmp_path / 'nope.ckpt'} does not exist" in error and "ckpt_path=null" in error
    assert not fresh_data.exists()  # the data was not read (mnist5k would be cached there)


def test_ckpt_path_last_without_a_checkpoint_says_how_to_point_at_the_run(tmp_path, data_dir, capsys):
    error = run_and_expect(compose_config([*TINY, "ckpt_path=last"], tmp_path, data_dir), capsys, 2)
    assert f"ckpt_path=last: there is no {tmp_path / 'checkpoints' / 'last.ckpt'}" in error
    assert "hydra.run.dir=<that run's folder>" in error


@pytest.mark.parametrize("damage", ["truncated", "not a checkpoint", "pickled object"])
def test_a_corrupt_checkpoint_is_refused_before_data_loads(earlier_run, tmp_path, capsys, damage):
    import torch

    bad = tmp_path / "bad.ckpt"
    if damage == "truncated":
        data = (earlier_run / "checkpoints" / "last.ckpt").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "not a checkpoint":
        bad.write_text("hello")
    else:
        torch.save({"state_dict": {}, "optimizer": torch.optim.SGD}, bad)  # a class: refused by weights_only
    fresh_data = tmp_path / "data"
    error = run_and_expect(compose_config([*TINY, f"ckpt_path={bad}"], tmp_path / "run", fresh_data), capsys, 2)
    expected = (
        "holds Python objects that loading with weights_only=True refuses"
        if damage == "pickled object"
        else ("is not a readable checkpoint (not the zip archive torch.save writes")
    )
    assert f"ckpt_path: {bad} {expected}" in error and "ckpt_path=null to start afresh" in error
    assert not fresh_data.exists()


def test_resuming_an_earlier_run_from_a_corrupt_last_checkpoint_changes_nothing_of_it(earlier_run, tmp_path, data_dir):
    run_dir = tmp_path / "earlier_copy"
    shutil.copytree(earlier_run, run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    before = snapshot(run_dir)
    result = run_train(*TINY, f"hydra.run.dir={run_dir}", "ckpt_path=last", env_extra={"DATA_DIR": str(data_dir)})
    assert result.returncode == 2, result.stderr[-3000:]
    assert "error: ckpt_path: " in result.stderr and "Traceback" not in result.stderr
    after = snapshot(run_dir)
    assert {k: v for k, v in after.items() if not k.startswith(".hydra.1/")} == before  # its .hydra/ kept too
    assert (run_dir / ".hydra.1" / "overrides.yaml").exists()  # the failed attempt's config, beside it


# ----- folders and data ----------------------------------------------------------------------------
def test_an_unwritable_run_folder_is_one_message_before_hydra_writes(tmp_path, data_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_train(*TINY, f"hydra.run.dir={blocker / 'run'}", env_extra={"DATA_DIR": str(data_dir)})
    assert result.returncode == 2
    assert f"error: hydra.run.dir: cannot write the output folder {blocker / 'run'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unwritable_checkpoint_folder_is_refused_at_check_time(make_config, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = make_config(*TINY, f"callbacks.model_checkpoint.dirpath={blocker / 'ckpt'}")
    error = run_and_expect(cfg, capsys, 2)
    assert f"callbacks.model_checkpoint.dirpath: cannot write to {blocker / 'ckpt'}" in error


def test_a_missing_dataset_folder_says_where_it_looked_and_what_to_do(tmp_path, capsys):
    cfg = compose_config([*TINY, "data=mnist"], tmp_path / "run", tmp_path / "empty")
    error = run_and_expect(cfg, capsys, 2)
    assert "data 'mnist': not found in" in error and "data.download=true" in error and "paths.data_dir" in error


def test_a_malformed_dataset_file_is_one_message(tmp_path, capsys):
    raw = tmp_path / "data" / "MNIST" / "raw"
    write_fake_mnist(raw, compress=False)
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    error = run_and_expect(compose_config([*TINY, "data=mnist"], tmp_path / "run", tmp_path / "data"), capsys, 2)
    assert f"{images} holds" in error and "the file is truncated" in error


# ----- W&B without a network -----------------------------------------------------------------------
def test_the_wandb_probe_gives_up_after_its_timeout_even_when_name_lookup_hangs(monkeypatch):
    from recipes.run.loggers import reachable

    def hanging_lookup(*args: object, **kwargs: object) -> None:
        time.sleep(5)
        raise socket.gaierror("lookup timed out")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_lookup)
    started = time.monotonic()
    assert reachable("api.wandb.ai", timeout=0.5) is False
    assert time.monotonic() - started < 2


@pytest.fixture
def not_wandb_server():
    """A local HTTP server that answers every request with 404, as a proxy or captive portal would."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        do_POST = do_PUT = do_GET  # noqa: N815  (http.server method names)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wandb_auto_with_a_key_and_no_server_resolves_to_offline_at_once(monkeypatch, caplog):
    from recipes.run.loggers import resolve_wandb_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "fake" * 10)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    import wandb.sdk.lib.wbauth  # noqa: F401  (importing wandb takes seconds on a busy machine; the probe is timed)

    started = time.monotonic()
    assert resolve_wandb_mode("auto") == "offline"
    assert time.monotonic() - started < 3.5
    assert "unreachable, logging offline" in caplog.text


def test_wandb_auto_with_a_key_and_a_server_that_is_not_wandb_logs_offline_without_hanging(tmp_path, data_dir, not_wandb_server):
    """A proxy or captive portal answers the probe, then W&B fails to start: the run goes on offline."""
    started = time.monotonic()
    result = run_train(
        *TINY,
        "logger=wandb",
        "logger.wandb.mode=auto",
        f"hydra.run.dir={tmp_path}",
        env_extra={
            "DATA_DIR": str(data_dir),
            "WANDB_MODE": None,
            "WANDB_API_KEY": "fake" * 10,
            "WANDB_BASE_URL": not_wandb_server,
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "starting online failed" in result.stdout + result.stderr  # Hydra's log goes to stdout and train.log
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
    assert (tmp_path / "csv" / "metrics.csv").exists()
    assert time.monotonic() - started < 240


# ----- every setting of every group: one message, status 2, before any data loads -------------------
# (overrides, what the one message must contain); each runs in-process through train.run, as train.py does
SETTINGS = [
    # types: converted where the meaning is plain, refused otherwise
    (["seed=abc"], "seed: must be an integer or null (got 'abc')"),
    (["seed=1.7"], "seed: must be an integer or null (got 1.7)"),
    (["seed=-1"], "seed: must be an integer from 0 to 4294967295 (numpy's seeds) or null (got -1); e.g. seed=0"),
    (["seed=4294967296"], "seed: must be an integer from 0 to 4294967295 (numpy's seeds) or null (got 4294967296)"),
    (["callbacks=early_stopping", "callbacks.early_stopping.patience=-1"], "patience must be an integer >= 0"),
    (["callbacks=early_stopping", "callbacks.early_stopping.min_delta=-0.1"], "callbacks.early_stopping: min_delta must be"),
    (["extras.print_config=maybe"], "extras.print_config: must be true or false (got 'maybe')"),
    (["extras.enforce_tags=2"], "extras.enforce_tags: must be true or false (got 2)"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs: must be an integer or null (got 'abc')"),
    (["trainer.max_epochs=1.5"], "trainer.max_epochs: must be an integer or null (got 1.5)"),
    (["task.optimizer.lr=abc"], "task.optimizer.lr: must be a number (got 'abc')"),
    (["task.optimizer.weight_decay=abc"], "task.optimizer.weight_decay: must be a number"),
    (["nonfinite_check_every=abc"], "nonfinite_check_every: must be an integer or null (got 'abc')"),
    (["nonfinite_check_every=0"], "nonfinite_check_every: must be an integer >= 1 (got 0)"),
    (["task.temperature_scaling=maybe"], "task.temperature_scaling: must be true or false (got 'maybe')"),
    (["skip_nonfinite=maybe"], "skip_nonfinite: must be true or false (got 'maybe')"),
    (["compile=sometimes"], "compile: must be true or false (got 'sometimes')"),
    (["overwrite=perhaps"], "overwrite: must be true or false (got 'perhaps')"),
    (["task.ece_bins=many"], "task.ece_bins: must be an integer (got 'many')"),
    (["data.batch_size=abc"], "data.batch_size: must be an integer"),
    (["trainer.log_every_n_steps=often"], "trainer.log_every_n_steps: must be an integer or null (got 'often')"),
    (["trainer.enable_progress_bar=sure"], "trainer.enable_progress_bar: must be true or false or null (got 'sure')"),
    (["model.hidden=16"], "model.hidden: must be a list such as [16, 32] (got 16)"),
    (["model.dropout=abc"], "model.dropout: must be a number (got 'abc')"),
    # names: a key the target does not take, a target that does not import
    (["+task.optimizer.lrr=0.1"], "task.optimizer.lrr: torch.optim.AdamW takes no argument 'lrr'; did you mean 'lr'?"),
    (["+trainer.max_epoch=3"], "trainer.max_epoch: lightning.Trainer takes no argument 'max_epoch'; did you mean 'max_epochs'?"),
    (["+model.widths=[8]"], "model.widths: recipes.models.MLP takes no argument 'widths'"),
    (["+data.batchsize=8"], "data.batchsize:"),
    (["+callbacks.model_checkpoint.every_n_epoch=1"], "callbacks.model_checkpoint.every_n_epoch:"),
    (["+task.optimiser_lr=1"], "task.optimiser_lr:"),
    (["task.optimizer._target_=torch.optim.Adamw"], "did you mean torch.optim.Adam"),
    (["task.optimizer._target_=torch.optim.nope.SGD"], "task.optimizer._target_: cannot import 'torch.optim.nope.SGD'"),
    (["task.scheduler._target_=torch.optim.lr_scheduler.OneCycle"], "did you mean torch.optim.lr_scheduler.OneCycleLR"),
    (["callbacks.progress_bar._target_=lightning.pytorch.callbacks.TQDMBar"], "callbacks.progress_bar._target_: cannot import"),
    (["logger.csv._target_=recipes.run.loggers.CSV"], "logger.csv._target_: cannot import 'recipes.run.loggers.CSV'"),
    # optimiser and schedule: built once on the model's parameters before the data loads
    (["task.optimizer.lr=-1"], "task.optimizer.lr: AdamW refused its settings: Invalid learning rate: -1"),
    (["task.optimizer.weight_decay=-1"], "task.optimizer.weight_decay: AdamW refused its settings"),
    (["+task.optimizer.eps=-1"], "task.optimizer.eps: AdamW refused its settings: Invalid epsilon value"),
    (["+task.optimizer.betas=[1.5,0.9]"], "task.optimizer.betas: AdamW refused its settings: Invalid beta parameter"),
    (
        ["task.optimizer._target_=torch.optim.SGD", "+task.optimizer.momentum=-1"],
        "task.optimizer.momentum: SGD refused its settings",
    ),
    (["task.scheduler.pct_start=1.5"], "task.scheduler.pct_start: OneCycleLR refused its settings"),
    (["task.scheduler.pct_start=-0.1"], "task.scheduler.pct_start: OneCycleLR refused its settings"),
    (["+task.scheduler.anneal_strategy=wavy"], "task.scheduler.anneal_strategy: must be one of 'cos', 'linear' (got 'wavy')"),
    # trainer: what Lightning accepts but fails after the data loads, ignores, or changes silently
    (["trainer.accumulate_grad_batches=0"], "trainer: accumulate_grad_batches must be an integer >= 1 (got 0)"),
    (["trainer.accumulate_grad_batches=-2"], "trainer: accumulate_grad_batches must be an integer >= 1 (got -2)"),
    (["trainer.check_val_every_n_epoch=0"], "trainer: check_val_every_n_epoch must be an integer >= 1 (got 0)"),
    (["trainer.log_every_n_steps=0"], "trainer: log_every_n_steps must be an integer >= 1 (got 0)"),
    (["trainer.devices=0"], "trainer: devices must be a positive number of devices"),
    (["trainer.devices=-3"], "trainer: devices must be a positive number of devices"),
    (["trainer.precision=16"], "float16 does not run on the CPU"),
    (["trainer.precision=16-mixed"], "float16 does not run on the CPU"),
    (["trainer.precision=64-true"], "trainer: precision must be 32-true, bf16-mixed or 16-mixed"),
    (["trainer.precision=17"], "trainer.precision: must be one of"),
    (["trainer.max_epochs=0"], "trainer: max_epochs must be >= 1 (or -1 for no limit)"),
    (["trainer.limit_train_batches=0"], "trainer: limit_train_batches must be null, an integer >= 1 or a fraction"),
    (["trainer.limit_val_batches=0"], "trainer: limit_val_batches must be null"),
    (["trainer.limit_test_batches=1.5"], "trainer: limit_test_batches must be null"),
    (["trainer.limit_train_batches=-1"], "trainer: limit_train_batches must be null"),
    (["trainer.gradient_clip_val=-1"], "trainer: gradient_clip_val must be >= 0 (got -1)"),
    (["trainer=ddp_cpu", "trainer.num_nodes=2"], "trainer: num_nodes > 1 needs a cluster launcher"),
    (["+trainer.num_nodes=0"], "trainer: num_nodes must be an integer >= 1 (got 0)"),
    (["trainer.accelerator=tpu"], "trainer.accelerator: 'tpu' asked for, but this machine has no TPU"),
    (["trainer.accelerator=quantum"], "trainer.accelerator: must be one of auto, cpu, gpu, cuda, mps, tpu (got 'quantum')"),
    (["+trainer.gradient_clip_algorithm=sideways"], "trainer.gradient_clip_algorithm: Trainer refused its settings"),
    # callbacks and monitor
    (["callbacks.model_checkpoint.mode=maximum"], "callbacks.model_checkpoint.mode: ModelCheckpoint refused its settings"),
    (["monitor.mode=maximum"], "monitor.mode: must be min or max (got 'maximum')"),  # before: ModelCheckpoint refused it
    (["callbacks.step_checkpoint.every_n_train_steps=-1"], "callbacks.step_checkpoint.every_n_train_steps"),
    (["callbacks.learning_rate_monitor.logging_interval=hourly"], "callbacks.learning_rate_monitor.logging_interval"),
    # models
    (["model.dropout=1.5"], "model: dropout must be < 1 (got 1.5)"),
    (["model.dropout=-0.1"], "model: dropout must be >= 0 (got -0.1)"),
    (["model.hidden=[0]"], "model: hidden must be a list of positive integers (got [0])"),
    (["model.hidden=[-4,8]"], "model: hidden must be a list of positive integers (got [-4, 8])"),
    (["model.num_outputs=-1"], "model: num_outputs must be an integer >= 0 (got -1)"),
    (["model=convnet", "model.widths=[]"], "model: widths must be a list of positive integers, at least one (got [])"),
    (["model=convnet", "model.widths=[-4,8]"], "model: widths must be a list of positive integers"),
    (["model=convnet", "model.dropout=2"], "model: dropout must be < 1 (got 2"),
    (["model=convnet", "model.in_channels=0"], "model: in_channels must be an integer >= 1 (got 0)"),
    (["task=segmentation", "model.widths=[0,8]"], "model: widths must be a list of positive integers"),
    (["task=detection", "model.stride=3"], "model: stride must be one of [2, 4, 8, 16] for 4 stages (widths) (got 3)"),
    (["task=detection", "model.head_depth=-1"], "model: head_depth must be an integer >= 0 (got -1)"),
    (["task=detection", "model.prior=1"], "model: prior must be < 1 (got 1"),
    (["task=vae", "model.latent_dim=0"], "model: latent_dim must be an integer >= 1 (got 0)"),
    (["task=vae", "model.hidden=[0]"], "model: hidden must be a list of positive integers"),
]


@pytest.mark.parametrize("overrides,message", SETTINGS, ids=[" ".join(o) for o, _ in SETTINGS])
def test_every_bad_setting_is_one_message_with_status_2_before_data_loads(tmp_path, capsys, overrides, message):
    fresh_data = tmp_path / "data"
    tiny = ("debug=smoke",) if any(o.startswith(("model=", "task=")) for o in overrides) else TINY
    cfg = compose_config([*tiny, *overrides], tmp_path / "run", fresh_data)
    error = run_and_expect(cfg, capsys, 2)
    assert message in error
    assert "Traceback" not in capsys.readouterr().err
    assert not fresh_data.exists()  # nothing was read: mnist5k would be cached there


@pytest.mark.parametrize(
    "override,setting,value",
    [
        ("skip_nonfinite=no", "skip_nonfinite", False),
        ("skip_nonfinite=off", "skip_nonfinite", False),
        ("task.temperature_scaling=no", "task.temperature_scaling", False),
        ("task.temperature_scaling=yes", "task.temperature_scaling", True),
        ("seed=3.0", "seed", 3),
        ("trainer.max_epochs=2.0", "trainer.max_epochs", 2),
        ("task.optimizer.lr='0.01'", "task.optimizer.lr", 0.01),
        ("data.batch_size='16'", "data.batch_size", 16),
    ],
)
def test_a_value_with_a_plain_meaning_is_converted_to_the_type_its_target_takes(make_config, override, setting, value):
    from omegaconf import OmegaConf

    from recipes.run.signatures import check_signatures

    cfg = make_config(*TINY, override)
    check_signatures(cfg)
    converted = OmegaConf.select(cfg, setting)
    assert converted == value and type(converted) is type(value)


def test_every_shipped_config_passes_the_signature_check(make_config):
    from recipes.run.signatures import check_signatures

    for task in sorted(p.stem for p in (CONFIGS / "task").glob("*.yaml")):
        for trainer in ("default", "gpu", "ddp_cpu", "fsdp"):
            check_signatures(make_config(f"task={task}", f"trainer={trainer}", "logger=tensorboard"))


# ----- data settings: one message, status 2, before the data loads where the setting alone shows it ----
IMBALANCE = "imbalance must be null or a finite ratio >= 1 of the largest to the smallest class"
REGRESSION = ("task=regression", "data=heteroscedastic")
# (overrides, the one message); mnist5k unless the overrides pick other data
DATA_SETTINGS = [
    (["data.imbalance=inf"], f"data 'mnist5k': {IMBALANCE} (got inf)"),  # nine classes would get no sample
    (["data.imbalance=nan"], f"data 'mnist5k': {IMBALANCE} (got nan)"),
    (["data.imbalance=0.5"], f"data 'mnist5k': {IMBALANCE} (got 0.5)"),
    (
        ["data.imbalance=800"],  # 400 training digits per class: the rarest class would keep round(0.5) = 0
        "data 'mnist5k': imbalance must be < 800: the smallest class has 400 training samples and the rarest class "
        "keeps 400 / imbalance of them, rounded, so a larger ratio leaves it none (got 800)",
    ),
    (["data.imbalance=100", "data.val_fraction=0.45", "data.test_fraction=0.45"], "must be < 100: the smallest class has 50"),
    (["data.shift=-3"], "data 'mnist5k': shift must be an integer >= 0 (got -3)"),  # augmentation silently off
    (["data.shift=28"], "data 'mnist5k': shift must be < image_size (28), or images leave their frame (got 28)"),
    (["data.shift=1.5"], "data.shift: must be an integer (got 1.5)"),
    (["data.hflip=maybe"], "data.hflip: must be true or false (got 'maybe')"),
    (["data.download=maybe"], "data.download: must be true or false (got 'maybe')"),
    (["data.label_noise=1"], "data 'mnist5k': label_noise must be in [0, 1) (got 1)"),
    (["data.label_noise=nan"], "data 'mnist5k': label_noise must be in [0, 1) (got nan)"),
    (["data.num_classes=5"], "data 'mnist5k': num_classes must be 10, what dataset mnist5k holds; set data.num_classes=10"),
    (["data.split_seed=-1"], "data 'mnist5k': split_seed must be an integer >= 0 (got -1)"),
    (["data.val_fraction=0.6"], "data 'mnist5k': val_fraction must be in (0, 0.5) (got 0.6)"),
    ([*REGRESSION, "data.outlier_shift=inf"], "data 'heteroscedastic': outlier_shift must be a finite number (got inf)"),
    ([*REGRESSION, "data.outlier_shift=nan"], "data 'heteroscedastic': outlier_shift must be a finite number (got nan)"),
    ([*REGRESSION, "data.outlier_shift=0"], "data 'heteroscedastic': outlier_shift must be > 0 (got 0"),
    ([*REGRESSION, "data.outliers=0.5"], "data 'heteroscedastic': outliers must be in [0, 0.5) (got 0.5)"),
    ([*REGRESSION, "data.outliers=-0.1"], "data 'heteroscedastic': outliers must be in [0, 0.5) (got -0.1)"),
    ([*REGRESSION, "data.outliers=nan"], "data 'heteroscedastic': outliers must be in [0, 0.5) (got nan)"),
    ([*REGRESSION, "data.num_rows=10"], "data 'heteroscedastic': num_rows must be an integer >= 20 (got 10)"),
    ([*REGRESSION, "data.target_scaling=log"], "data 'heteroscedastic': target_scaling must be one of standard, scale, none"),
    (["task=detection", "data.noise=inf"], "data 'canvas': noise must be a finite number (got inf)"),
    (["task=detection", "data.max_scale=inf"], "data 'canvas': need 0 < min_scale <= max_scale <= size / 28"),
    (["task=simclr", "task.augment.noise_std=inf"], "task.augment: noise_std must be finite and >= 0 (got inf)"),
    (["task=simclr", "task.augment.blur_sigma=[0.1,inf]"], "task.augment: blur_sigma must be finite [low, high], 0 < low"),
]


@pytest.mark.parametrize("overrides,message", DATA_SETTINGS, ids=[" ".join(o) for o, _ in DATA_SETTINGS])
def test_every_bad_data_setting_is_one_message_with_status_2_before_data_loads(tmp_path, capsys, overrides, message):
    fresh_data = tmp_path / "data"
    tiny = ("debug=smoke",) if any(o.startswith("task=") for o in overrides) else TINY
    error = run_and_expect(compose_config([*tiny, *overrides], tmp_path / "run", fresh_data), capsys, 2)
    assert message in error
    assert "Traceback" not in capsys.readouterr().err
    assert not fresh_data.exists()  # nothing was read: mnist5k would be cached there


def test_an_imbalance_that_leaves_a_class_no_sample_of_a_dataset_on_disk_is_refused_at_setup(tmp_path, capsys):
    write_fake_mnist(tmp_path / "data" / "MNIST" / "raw")  # 6 training images per class, 1 of them held out
    cfg = compose_config([*TINY, "data=mnist", "data.imbalance=10"], tmp_path / "run", tmp_path / "data")
    error = run_and_expect(cfg, capsys, 2)
    assert "error: data 'mnist': imbalance must be < 10: the smallest class has 5 training samples" in error
    assert error.endswith("(got 10)")


def test_a_damaged_gzip_dataset_file_is_one_message_naming_it(tmp_path, capsys):
    raw = tmp_path / "data" / "MNIST" / "raw"
    write_fake_mnist(raw)
    labels = raw / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(b"\x1f\x8b" + b"not gzip data" * 10)
    error = run_and_expect(compose_config([*TINY, "data=mnist"], tmp_path / "run", tmp_path / "data"), capsys, 2)
    assert error.startswith(f"error: data: {labels} cannot be read (") and error.endswith("delete it and fetch it again")


def test_a_damaged_cifar10_file_is_one_message_naming_it(tmp_path, capsys):
    from torchvision.datasets import CIFAR10

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, _ in [*CIFAR10.train_list, *CIFAR10.test_list, [CIFAR10.meta["filename"], None]]:
        (folder / name).write_bytes(b"not a pickle")
    cfg = compose_config(["debug=smoke", "data=cifar10", "model=convnet"], tmp_path / "run", tmp_path / "data")
    error = run_and_expect(cfg, capsys, 2)
    assert error == (
        f"error: data 'cifar10': {folder / 'data_batch_1'} is missing or damaged (its checksum is not CIFAR-10's), "
        f"and 6 more file(s) there; delete {folder} and run with data.download=true, or copy the files again"
    )


def test_a_damaged_mnist5k_cache_is_rebuilt(tmp_path, caplog):
    import torch

    from recipes.data.sources import load_mnist5k

    cache = tmp_path / "mnist5k.pt"
    cache.write_bytes(b"half a file")
    images, labels = load_mnist5k(tmp_path)
    assert images.shape == (5000, 1, 28, 28) and labels.bincount().tolist() == [500] * 10
    assert f"data 'mnist5k': the cache {cache} is unreadable" in caplog.text and "rebuilding it" in caplog.text
    again, _ = load_mnist5k(tmp_path)  # now read from the rewritten cache
    assert torch.equal(again, images) and [p.name for p in tmp_path.iterdir()] == ["mnist5k.pt"]


@pytest.fixture
def read_only(tmp_path, monkeypatch) -> Path:
    """A folder nothing can be written into: chmod 555, and (for root, whom modes do not stop) a file system
    that refuses to let a file be put there, as a read-only mount does."""
    import errno
    import os

    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).parent == folder:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    yield folder
    folder.chmod(0o755)


def test_a_read_only_data_dir_runs_without_the_mnist5k_cache_and_says_how_to_keep_one(read_only, tmp_path, caplog):
    import math

    metrics = train(compose_config(list(TINY), tmp_path / "run", read_only))
    assert math.isfinite(metrics["test/acc"])
    cache = read_only / "mnist5k.pt"
    assert f"data 'mnist5k': cannot write the cache {cache} (" in caplog.text
    assert "going on without it (the data is read again next run). To cache it, set paths.data_dir (or DATA_DIR)" in caplog.text
    assert list(read_only.iterdir()) == []  # no half-written file left behind


def test_a_data_dir_and_a_run_folder_with_spaces_and_non_ascii_letters_work_end_to_end(tmp_path):
    folder = tmp_path / "dätä ü"
    run_dir = folder / "rün 1"
    result = run_train(*TINY, f"hydra.run.dir='{run_dir}'", env_extra={"DATA_DIR": str(folder / "dätä")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (folder / "dätä" / "mnist5k.pt").exists()
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and (run_dir / "csv" / "metrics.csv").exists()
    assert (run_dir / ".hydra" / "config.yaml").exists()
