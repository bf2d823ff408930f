"""``hparams_search=tune_loss``: an Optuna search over the space the chosen loss declares, resumable from its storage."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from losses import ConfigError
from recipes.run.search import search_params
from tests.helpers.configs import CONFIGS, ROOT
from tests.test_sweeps import SMOKE, run_sweep


def test_search_params_follow_the_loss_s_declaration():
    assert search_params("focal") == {"loss.gamma": "interval(0.0, 5.0)", "loss.alpha": "interval(0.1, 0.9)"}
    assert search_params("nt_xent") == {"loss.temperature": "tag(log, interval(0.03, 1.0))"}
    with_lr = search_params("huber", "loss", lr_too=True, lr=0.01)
    assert with_lr["task.optimizer.lr"] == "tag(log, interval(0.001, 0.1))"


def test_a_loss_without_hyperparameters_is_refused_unless_the_learning_rate_is_searched():
    with pytest.raises(ConfigError, match="loss 'mse' declares no search space.*tune.lr=true"):
        search_params("mse")
    assert list(search_params("mse", lr_too=True, lr=0.003)) == ["task.optimizer.lr"]


def test_the_sweeper_config_takes_its_space_from_the_chosen_loss_and_the_task_s_monitor():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=["hparams_search=tune_loss", "task=regression", "loss=huber", "tune.lr=true", "seed=7"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)  # the storage sits in hydra.sweep.dir, which reads hydra's runtime
    sweeper = cfg.hydra.sweeper
    assert dict(sweeper.params) == {
        "loss.delta": "tag(log, interval(0.1, 3.0))",
        "task.optimizer.lr": "tag(log, interval(0.001, 0.1))",
    }
    assert sweeper.direction == "minimize" and cfg.optimized_metric == "val/mae"  # the task's validation metric
    assert sweeper.sampler.seed == 7 and sweeper.study_name == "huber"
    assert sweeper.storage.startswith("sqlite:///") and sweeper.storage.endswith("/optuna.db")
    assert cfg.test is False


def test_tune_loss_searches_the_declared_space_and_an_interrupted_search_resumes(tmp_path):
    sweep = tmp_path / "tune"
    args = ["hparams_search=tune_loss", "loss=focal", "tune.lr=true", "hydra.sweeper.sampler.n_startup_trials=2"]
    result = run_sweep(sweep, *args, "hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"loss.gamma", "loss.alpha", "task.optimizer.lr"}
    assert 0.0 <= best["best_params"]["loss.gamma"] <= 5.0 and 0.1 <= best["best_params"]["loss.alpha"] <= 0.9
    assert 0.0003 <= best["best_params"]["task.optimizer.lr"] <= 0.03  # the default 0.003, / 10 to * 10
    first = sorted(p.parent.parent.name for p in sweep.glob("*/csv/metrics.csv"))
    assert first == ["0", "1"]
    metrics = (sweep / "0" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "val/acc" in metrics and "test/acc" not in metrics  # the trials never touch the test split

    # the same command with a larger budget runs only the trials that are left, into new folders
    again = run_sweep(sweep, *args, "hydra.sweeper.n_trials=3")
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(p.parent.parent.name for p in sweep.glob("*/csv/metrics.csv")) == ["0", "1", "2"]
    with sqlite3.connect(sweep / "optuna.db") as db:
        states = [s for (s,) in db.execute("select state from trials order by number")]
    assert states == ["COMPLETE"] * 3


def test_a_search_without_the_optuna_extra_is_one_message_naming_it(monkeypatch):
    import importlib.util

    from recipes.run.search import missing_extra

    assert missing_extra(["hparams_search=tune_loss", "loss=focal"]) is None  # installed here (the dev extra)
    assert missing_extra(["loss=focal"]) is None
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if "optuna" in name else real(name))
    message = missing_extra(["loss=focal", "hparams_search=focal_optuna"])
    assert message.startswith("hparams_search=focal_optuna: needs the Optuna sweeper") and '".[optuna]"' in message
    assert "experiment=which_loss" in missing_extra(["experiment=which_loss", "task=regression"])
    assert missing_extra(["hparams_search=null"]) is None


def test_the_project_s_hydra_plugins_import_without_optuna():
    """Hydra imports every hydra_plugins module at start: without the extra, a plain run must still start."""
    code = (
        "import sys; sys.modules['optuna'] = None; sys.modules['hydra_plugins.hydra_optuna_sweeper'] = None\n"
        "import hydra_plugins.loss_recipes.resumable_optuna, hydra_plugins.loss_recipes.which_loss\n"
        "from hydra.core.plugins import Plugins; Plugins.instance(); print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_two_workers_sharing_one_storage_add_their_trials_to_one_study(tmp_path):
    """Two concurrent searches on one storage (as two machines would run them): one study holds every trial of both,
    numbered once each, and each trial is the job one worker ran (none lost, none twice)."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'shared.db'}"  # local disk here; across machines a database server URL
    optuna.create_study(study_name="focal", storage=storage, direction="maximize")  # once, before the workers
    env = {"PATH": "/usr/bin:/bin", "WANDB_MODE": "offline", "DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    search = ["train.py", "-m", *SMOKE, "hparams_search=tune_loss", "loss=focal", "hydra.sweeper.n_trials=2"]
    shared = {"cwd": ROOT, "env": env, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    workers = [
        subprocess.Popen([sys.executable, *search, *own], **shared)
        for own in (
            [f"hydra.sweeper.storage={storage}", f"hydra.sweeper.sampler.seed={k}", f"hydra.sweep.dir={tmp_path / f'worker{k}'}"]
            for k in (0, 1)
        )
    ]
    for worker in workers:
        out, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0, out[-3000:]

    trials = optuna.load_study(study_name="focal", storage=storage).trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    jobs = [yaml.safe_load(p.read_text()) for p in sorted(tmp_path.glob("worker*/*/.hydra/overrides.yaml"))]
    assert all(list((tmp_path / f"worker{k}").glob("*/csv/metrics.csv")) for k in (0, 1))  # both workers ran trials
    ran = sorted(float(next(o for o in job if o.startswith("loss.gamma=")).partition("=")[2]) for job in jobs)
    assert sorted(t.params["loss.gamma"] for t in trials) == ran  # the study's trials are exactly the jobs run
    assert len(set(ran)) == len(ran)  # the workers' samplers (seeds 0 and 1) did not repeat each other's points
