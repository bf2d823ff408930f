"""The ``logger=`` options (configs/logger/) and W&B's online/offline decision, all without a network."""

from __future__ import annotations

import logging

import pytest

from losses.errors import ConfigError
from recipes.run.build import instantiate, instantiate_all
from recipes.run.loggers import resolve_wandb_mode, wandb_base_url, wandb_logged_in
from tests.test_bad_inputs import closed_port, run_and_expect
from train import train

TINY = ("model=mlp", "model.hidden=[16]")
KEY = "0123456789abcdef" * 3  # 48 characters: the format wandb accepts for an API key


# ----- which loggers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("choice", "loggers"),
    [
        ("logger=csv", ["csv"]),
        ("logger=mlflow", ["csv", "mlflow"]),
        ("logger=many_loggers", ["csv", "tensorboard", "wandb", "mlflow"]),
        ("logger=[wandb,tensorboard]", ["csv", "wandb", "tensorboard"]),
    ],
)
def test_every_logger_choice_keeps_csv(make_config, choice, loggers):
    assert list(make_config(choice).logger) == loggers


def test_wandb_and_tensorboard_together_build_both(smoke_config):
    from lightning.pytorch.loggers import TensorBoardLogger

    from recipes.run.loggers import CSVLogger, WandbLogger

    built = instantiate_all(smoke_config("logger=[wandb,tensorboard]", "logger.wandb.mode=offline").logger, "logger")
    assert [type(b) for b in built] == [CSVLogger, WandbLogger, TensorBoardLogger]


def test_many_loggers_write_to_csv_tensorboard_wandb_and_mlflow_in_the_run_folder(smoke_config, tmp_path, monkeypatch):
    import wandb
    from mlflow.tracking import MlflowClient

    from recipes.run.loggers import finish_wandb

    warnings: list[str] = []
    monkeypatch.setattr(wandb, "termwarn", lambda message, *args, **kwargs: warnings.append(message))
    try:
        metrics = train(smoke_config("logger=many_loggers", "logger.wandb.mode=offline", *TINY))
    finally:
        finish_wandb()
    assert "train/loss" in (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
    assert not [w for w in warnings if "anonymous" in w]  # Lightning passed anonymous=None, which wandb warns about

    client = MlflowClient(f"file:{tmp_path / 'mlruns'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "classification"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "classification-ce" and run.info.status == "FINISHED"
    assert run.data.tags["loss"] == "ce" and run.data.params["seed"] == "0"
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])


def test_mlflow_tracking_uri_is_settable(smoke_config, tmp_path):
    store = tmp_path / "elsewhere"
    logger = instantiate(smoke_config("logger=mlflow", f"logger.mlflow.tracking_uri=file:{store}").logger.mlflow)
    logger.log_metrics({"val/acc": 0.5}, step=3)
    logger.finalize("success")
    assert (store / logger.experiment_id / logger.run_id / "metrics" / "val" / "acc").read_text().split()[1:] == ["0.5", "3"]
    assert not (tmp_path / "mlruns").exists()


def test_mlflow_follows_mlflow_tracking_uri_from_the_environment(make_config, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///somewhere.db")
    assert make_config("logger=mlflow").logger.mlflow.tracking_uri == "sqlite:///somewhere.db"


def test_mlflow_missing_is_one_config_error_with_the_install_command(monkeypatch):
    import lightning.pytorch.loggers.mlflow as lightning_mlflow

    from recipes.run.loggers import mlflow_logger

    monkeypatch.setattr(lightning_mlflow, "_MLFLOW_AVAILABLE", False)
    with pytest.raises(ConfigError, match=r"logger.mlflow: MLflow is not installed; `pip install mlflow-skinny`"):
        mlflow_logger()


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("true", True), ("all", "all")])
def test_wandb_log_model_reaches_lightnings_logger(smoke_config, value, expected):
    cfg = smoke_config("logger=wandb", "logger.wandb.mode=offline", f"logger.wandb.log_model={value}")
    assert instantiate(cfg.logger.wandb)._log_model == expected


def test_wandb_log_model_is_off_by_default(make_config):
    assert make_config("logger=wandb").logger.wandb.log_model is False


# ----- W&B login, as wandb itself finds it ---------------------------------------------------------
@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    """No W&B credentials anywhere: an empty netrc file of the test's own, wandb's settings in ``tmp_path``."""
    import wandb

    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    wandb.teardown()  # wandb caches its settings (base_url) and the session's credentials per process
    yield netrc
    wandb.teardown()


def test_wandb_0_31_defaults_to_its_new_api_host(no_wandb_login):
    assert wandb_base_url() == "https://api.forge.coreweave.com"


@pytest.mark.parametrize(
    "machine",
    [
        "api.forge.coreweave.com",  # what `wandb login` writes with wandb 0.31
        "api.wandb.ai",  # what older versions wrote; wandb 0.31 still reads it for its default host
    ],
)
def test_a_netrc_login_for_either_host_counts_as_logged_in(no_wandb_login, machine):
    no_wandb_login.write_text(f"machine {machine}\n  login user\n  password {KEY}\n")
    assert wandb_logged_in(wandb_base_url()) is True


def test_a_netrc_without_a_wandb_machine_is_logged_out(no_wandb_login):
    no_wandb_login.write_text(f"machine example.com\n  login user\n  password {KEY}\n")
    assert wandb_logged_in(wandb_base_url()) is False


def test_a_self_hosted_server_needs_its_own_netrc_entry(no_wandb_login, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    no_wandb_login.write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")
    assert wandb_logged_in(wandb_base_url()) is False
    no_wandb_login.write_text(f"machine wandb.example.com\n  login user\n  password {KEY}\n")
    assert wandb_logged_in(wandb_base_url()) is True


def test_wandb_api_key_in_the_environment_counts_as_logged_in(no_wandb_login, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert wandb_logged_in(wandb_base_url()) is True


def test_auto_without_a_login_is_offline_with_one_message(no_wandb_login, caplog):
    with caplog.at_level(logging.INFO, logger="recipes.run.loggers"):
        assert resolve_wandb_mode("auto") == "offline"
    messages = [r.getMessage() for r in caplog.records if r.name == "recipes.run.loggers"]
    assert messages == [
        "W&B: not logged in to https://api.forge.coreweave.com, logging offline; upload later with `wandb sync <run dir>/wandb`"
    ]


def test_online_without_a_login_is_a_config_error(no_wandb_login):
    with pytest.raises(ConfigError, match=r"^logger.wandb.mode=online: not logged in to W&B .* run `wandb login`"):
        resolve_wandb_mode("online")


def test_online_with_a_login_and_no_server_is_a_config_error(no_wandb_login, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ConfigError, match=r"^logger.wandb.mode=online: 127.0.0.1:\d+ is unreachable"):
        resolve_wandb_mode("online")


def test_a_run_with_online_and_no_login_exits_2_with_one_message_before_training(no_wandb_login, smoke_config, capsys, tmp_path):
    cfg = smoke_config("logger=wandb", "logger.wandb.mode=online", *TINY)
    error = run_and_expect(cfg, capsys, 2)
    assert error.startswith("error: logger.wandb.mode=online: not logged in to W&B (https://api.forge.coreweave.com)")
    assert not (tmp_path / "wandb").exists() and not list(tmp_path.rglob("*.ckpt"))


# ----- syncing offline runs later ------------------------------------------------------------------
def fake_run(wandb_dir, name: str, synced: bool = False):
    folder = wandb_dir / name
    folder.mkdir(parents=True)
    run_id = name.rsplit("-", 1)[1]
    (folder / f"run-{run_id}.wandb").write_bytes(b":W&B")
    if synced:
        (folder / f"run-{run_id}.wandb.synced").write_text("")
    return folder


def test_wandb_sync_syncs_each_unsynced_offline_run_under_logs_oldest_first(no_wandb_login, tmp_path, monkeypatch, capsys):
    from recipes.results.wandb_sync import main

    logs = tmp_path / "logs"
    single = logs / "classification" / "runs" / "2026-01-01_00-00-00" / "wandb"
    resumed = logs / "detection" / "runs" / "2026-01-02_00-00-00" / "wandb"
    sweep_job = logs / "classification" / "multiruns" / "2026-01-03_00-00-00" / "1" / "wandb"
    expected = [
        fake_run(single, "offline-run-20260101_000001-aaaa1111"),
        fake_run(resumed, "offline-run-20260102_000001-bbbb2222"),  # killed, then resumed into a second folder
        fake_run(resumed, "offline-run-20260102_000502-bbbb2222"),
        fake_run(sweep_job, "offline-run-20260103_000001-cccc3333"),
    ]
    fake_run(single, "offline-run-20251231_000001-dddd4444", synced=True)  # synced before: left alone
    fake_run(single, "run-20251230_000001-eeee5555")  # an online run: already on the server
    (single / "offline-run-20260101_000002-ffff6666").mkdir()  # started, but no run file was written
    (single / "latest-run").symlink_to(expected[0])  # wandb's link to the newest run: not a second copy

    monkeypatch.setenv("WANDB_API_KEY", KEY)
    synced: list = []
    assert main([str(logs)], sync=lambda folder: synced.append(folder) or 0) == 0
    assert synced == sorted(expected) and synced.index(expected[1]) < synced.index(expected[2])
    assert "synced 4 of 4 offline runs" in capsys.readouterr().out


def test_wandb_sync_dry_run_lists_the_folders_and_syncs_nothing(no_wandb_login, tmp_path, capsys):
    from recipes.results.wandb_sync import main

    folder = fake_run(tmp_path / "logs" / "vae" / "runs" / "r" / "wandb", "offline-run-20260101_000001-aaaa1111")
    assert main([str(tmp_path / "logs"), "--dry-run"], sync=lambda folder: pytest.fail("synced")) == 0
    assert capsys.readouterr().out.splitlines() == [str(folder)]


def test_wandb_sync_without_a_login_is_one_message_and_status_2(no_wandb_login, tmp_path, capsys):
    from recipes.results.wandb_sync import main

    fake_run(tmp_path / "logs" / "vae" / "runs" / "r" / "wandb", "offline-run-20260101_000001-aaaa1111")
    assert main([str(tmp_path / "logs")], sync=lambda folder: pytest.fail("synced")) == 2
    assert capsys.readouterr().err.startswith("error: not logged in to W&B (https://api.forge.coreweave.com)")


def test_wandb_sync_reports_a_failed_upload_with_status_1(no_wandb_login, tmp_path, monkeypatch, capsys):
    from recipes.results.wandb_sync import main

    folder = fake_run(tmp_path / "logs" / "vae" / "runs" / "r" / "wandb", "offline-run-20260101_000001-aaaa1111")
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert main([str(tmp_path / "logs")], sync=lambda folder: 1) == 1
    assert capsys.readouterr().err == f"error: `wandb sync {folder}` failed\n"


def test_wandb_numbers_go_from_a_thread_in_order_and_an_image_waits_for_them(tmp_path):
    import threading

    from recipes.run.loggers import WandbLogger

    class Run:  # stands in for the wandb run: records each log call and the thread it came from
        calls: list = []

        def log(self, data):
            self.calls.append((dict(data), threading.current_thread().name))

    logger = WandbLogger(mode="disabled", save_dir=str(tmp_path))
    logger._experiment = Run()
    for step in range(5):
        logger.log_metrics({"train/loss": float(step)}, step=step)
    logger.log_metrics({"image": object()}, step=5)  # not a number: sent at once, after the numbers before it
    steps = [data["trainer/global_step"] for data, _ in Run.calls]
    assert steps == [0, 1, 2, 3, 4, 5]
    assert all(name.startswith("wandb-log") for _, name in Run.calls[:5])
    assert Run.calls[5][1] == threading.current_thread().name
