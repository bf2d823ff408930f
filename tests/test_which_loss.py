"""``experiment=which_loss``: the ranking's statistics on runs with known outcomes, and the whole sweep at smoke size."""

from __future__ import annotations

import math

import pytest
import yaml

from recipes.results.paired import TIE, t_interval
from recipes.results.which_loss import main as which_loss_main
from tests.test_sweeps import fake_run, run_sweep

T_975_2 = 4.302652729749464  # the 97.5% quantile of Student's t with 2 degrees of freedom (3 seeds)

# test/acc per seed 0, 1, 2: focal beats ce on every seed, hinge wins one seed and loses two, bce_logits never ran
OUTCOMES = {
    "ce": [0.90, 0.92, 0.94],
    "focal": [0.93, 0.94, 0.97],  # paired differences 0.03, 0.02, 0.03: small spread, clearly above 0
    "hinge": [0.80, 0.95, 0.91],  # paired differences -0.10, 0.03, -0.03: the seeds do not separate it from ce
}


def fake_which_loss(sweep, outcomes=OUTCOMES, mode="max"):
    manifest = {
        "task": "classification",
        "metric": "val/acc",
        "test_metric": "test/acc",
        "mode": mode,
        "defaults": {"loss": "ce"},
        "slots": {"loss": [*outcomes, "bce_logits"]},
        "trials": 3,
        "seeds": 3,
        "best": {"loss=focal": {"loss.gamma": 1.5, "loss.alpha": 0.25}},
        "failed": {"loss=bce_logits": "ValueError: boom"},
    }
    sweep.mkdir(parents=True)
    (sweep / "which_loss.yaml").write_text(yaml.safe_dump(manifest))
    for name, values in outcomes.items():
        for seed, value in enumerate(values):
            fake_run(sweep / "final" / "loss" / name / f"seed{seed}", [f"loss={name}", f"seed={seed}"], {"test/acc": value})


def expected(values):
    """Mean, sample std (ddof 1) and the 95% t interval, written out by hand."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T_975_2 * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def test_t_interval_is_mean_plus_minus_t_times_the_standard_error():
    i = t_interval([0.1, 0.2, 0.6])
    assert (i.n, i.mean, i.std) == (3, pytest.approx(0.3), pytest.approx(math.sqrt(0.07)))
    assert (i.low, i.high) == pytest.approx((0.3 - T_975_2 * math.sqrt(0.07 / 3), 0.3 + T_975_2 * math.sqrt(0.07 / 3)))
    one = t_interval([0.4])
    assert one.std == 0.0 and math.isnan(one.low) and one.covers(0.0)  # one seed: no interval, nothing separated


def test_the_ranking_and_its_paired_statistics_on_known_outcomes(tmp_path):
    fake_which_loss(tmp_path / "sweep")
    out = which_loss_main([str(tmp_path / "sweep")])
    entries = {e.loss: e for e in out["entries"]}
    assert [e.loss for e in out["entries"]] == ["focal", "ce", "hinge", "bce_logits"]  # by mean test/acc, failed last

    for name, values in OUTCOMES.items():
        s = entries[name].score
        assert (s.mean, s.std, s.low, s.high) == pytest.approx(expected(values))
        assert entries[name].by_seed == dict(enumerate(values))

    focal = entries["focal"].paired
    assert (focal.mean, focal.std, focal.low, focal.high) == pytest.approx(expected([0.03, 0.02, 0.03]))
    assert focal.low > 0 and entries["focal"].verdict == "better"
    hinge = entries["hinge"].paired
    assert (hinge.mean, hinge.std, hinge.low, hinge.high) == pytest.approx(expected([-0.10, 0.03, -0.03]))
    assert hinge.low < 0 < hinge.high and entries["hinge"].verdict == TIE
    assert entries["ce"].verdict == "default" and entries["ce"].paired is None
    assert entries["bce_logits"].verdict == "failed" and entries["bce_logits"].failed == "ValueError: boom"

    md = (tmp_path / "sweep" / "which_loss.md").read_text()
    assert "| 1 | focal | loss.alpha=0.25, loss.gamma=1.5 | 3 | 0.9467 ± 0.021 |" in md
    assert "| 3 | hinge | defaults | 3 |" in md and "not distinguishable" in md and "failed: ValueError: boom" in md
    rows = (tmp_path / "sweep" / "which_loss.csv").read_text().splitlines()
    assert rows[0].startswith("slot,loss,setting,seeds,mean,std,ci_low,ci_high,delta_mean")
    assert rows[1].startswith("loss,focal,") and rows[1].endswith(",better,")
    assert [p.name for p in out["plots"]] == ["which_loss_loss.png"]


def test_a_lower_is_better_metric_ranks_and_judges_the_other_way(tmp_path):
    fake_which_loss(tmp_path / "sweep", mode="min")  # e.g. test/mae: focal's higher values are now worse
    entries = {e.loss: e for e in which_loss_main([str(tmp_path / "sweep")])["entries"]}
    assert [e for e in entries][:3] == ["hinge", "ce", "focal"]
    assert entries["focal"].verdict == "worse"


def test_which_loss_tunes_retrains_with_seeds_ranks_and_resumes(tmp_path):
    sweep = tmp_path / "which"
    args = [
        "experiment=which_loss",
        "task=classification",
        "hydra.sweeper.losses=[ce,focal]",
        "hydra.sweeper.trials=2",
        "hydra.sweeper.seeds=2",
        "hydra.sweeper.startup_trials=1",
    ]
    result = run_sweep(sweep, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (sweep / "tune" / "loss" / "focal").iterdir()) == ["0", "1"]
    assert not (sweep / "tune" / "loss" / "ce").exists()  # ce declares no search space: its config's values
    for name in ("ce", "focal"):
        assert sorted(p.name for p in (sweep / "final" / "loss" / name).iterdir()) == ["seed0", "seed1"]
    trial = (sweep / "tune" / "loss" / "focal" / "0" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "val/acc" in trial and "test/acc" not in trial  # tuned on validation only
    manifest = yaml.safe_load((sweep / "which_loss.yaml").read_text())
    assert manifest["defaults"] == {"loss": "ce"} and manifest["test_metric"] == "test/acc"
    assert set(manifest["best"]["loss=focal"]) == {"loss.gamma", "loss.alpha"}
    md = (sweep / "which_loss.md").read_text()
    assert "| ce | defaults | 2 |" in md and "| focal | loss." in md and (sweep / "which_loss_loss.png").exists()

    again = run_sweep(sweep, *args)  # everything finished: nothing is launched again, the report is rewritten
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Launching" not in again.stdout + again.stderr
    assert (sweep / "which_loss.md").read_text() == md


def test_with_a_wandb_logger_the_ranking_is_a_wandb_table_in_the_search_s_group(tmp_path, monkeypatch):
    import sys
    import types

    from omegaconf import OmegaConf

    from recipes.results.which_loss import COLUMNS
    from recipes.results.which_loss_wandb import group_name, log_report, wandb_overrides

    calls = {}

    class Table:
        def __init__(self, columns, data):
            self.columns, self.data = columns, data

    class Run:
        def log(self, values):
            calls["log"] = values

        def finish(self):
            calls["finished"] = True

    def init(**kwargs):
        calls["init"] = kwargs
        return Run()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init, Table=Table, Image=lambda path: path))
    fake_which_loss(tmp_path / "sweep")
    result = which_loss_main([str(tmp_path / "sweep")])
    config = OmegaConf.create({"logger": {"wandb": {"mode": "offline", "project": "loss-recipes", "group": "x"}}})
    group = group_name("which_loss", "classification", "sqlite:///sweep/which_loss.db")

    assert log_report(config, result, tmp_path / "sweep", group) == "offline"
    assert calls["init"]["group"] == group and calls["init"]["job_type"] == "report" and calls["finished"]
    assert calls["init"]["project"] == "loss-recipes" and calls["init"]["mode"] == "offline"
    table = calls["log"]["which_loss"]
    assert table.columns == COLUMNS and [row[1] for row in table.data] == ["focal", "ce", "hinge", "bce_logits"]
    assert table.data[0][COLUMNS.index("verdict")] == "better" and table.data[1][COLUMNS.index("delta_mean")] is None
    runs = calls["log"]["which_loss_runs"]
    assert runs.columns[:3] == ["phase", "slot", "loss"] and len(runs.data) == 9  # three seeds of three losses
    assert list(calls["log"]) == ["which_loss", "which_loss_runs", "plot/which_loss_loss"]

    # every job of the search joins that group, by phase; without a W&B logger (logger=csv) nothing is added
    assert wandb_overrides(config, group, "tune") == [f"logger.wandb.group={group}", "logger.wandb.job_type=tune"]
    assert wandb_overrides(OmegaConf.create({"logger": {"csv": {}}}), group, "final") == []
    assert log_report(OmegaConf.create({"logger": {"csv": {}}}), result, tmp_path / "sweep", group) is None
    assert group == group_name("which_loss", "classification", "sqlite:///sweep/which_loss.db")  # one per storage
    assert group != group_name("which_loss", "classification", "postgresql://db/other")


def test_which_loss_keeps_its_studies_in_the_storage_it_is_given_and_lists_every_run(tmp_path):
    """``hydra.sweeper.storage=<URL>`` (a database server across machines; sqlite on local disk here)."""
    import optuna

    sweep, storage = tmp_path / "which", f"sqlite:///{tmp_path / 'shared.db'}"
    args = ["experiment=which_loss", "hydra.sweeper.losses=[focal]", "hydra.sweeper.trials=1", "hydra.sweeper.seeds=1"]
    result = run_sweep(sweep, *args, "hydra.sweeper.startup_trials=1", f"hydra.sweeper.storage={storage}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (sweep / "which_loss.db").exists()
    assert len(optuna.load_study(study_name="loss=focal", storage=storage).trials) == 1
    rows = (sweep / "which_loss_runs.csv").read_text().splitlines()
    assert rows[0].startswith("phase,slot,loss,run,seed,overrides,fit_seconds,")
    assert [row.split(",")[:4] for row in rows[1:]] == [["tune", "loss", "focal", "0"], ["final", "loss", "focal", "seed0"]]
