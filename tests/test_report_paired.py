"""The report's paired comparisons and ``runs.csv`` on runs with known outcomes (no training)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from recipes.experiments.simulations import box_regression
from recipes.results.paired import MIN_SEEDS, TIE, paired
from recipes.results.report import main as report_main
from tests.test_sweeps import fake_run

# test/map per seed 0, 1, 2: ciou beats giou on every seed by about 0.02; iou wins one seed and loses two
OUTCOMES = {
    "giou": [0.70, 0.75, 0.80],
    "ciou": [0.72, 0.77, 0.83],  # differences 0.02, 0.02, 0.03
    "iou": [0.60, 0.80, 0.78],  # differences -0.10, 0.05, -0.02
}


def fake_sweep(folder, outcomes=OUTCOMES, seconds=12.5):
    job = 0
    for box, values in outcomes.items():
        for seed, value in enumerate(values):
            run = folder / str(job)
            fake_run(run, [f"box_loss={box}", f"seed={seed}"], {"test/map": value, "val/map": value})
            (run / "timing.json").write_text(json.dumps({"fit_seconds": seconds}))
            (run / "commit.txt").write_text("abc123\n")
            job += 1


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def as_evidence(sweep, evidence):
    """Report ``sweep``, then copy its ``runs.csv`` alone into ``evidence`` (a docs/evidence/ folder); returns it."""
    report_main([str(sweep)])
    evidence.mkdir()
    (evidence / "runs.csv").write_text((sweep / "runs.csv").read_text())
    return evidence


def test_a_clear_winner_is_marked_higher_and_a_tie_not_distinguishable(tmp_path):
    fake_sweep(tmp_path)
    out = report_main([str(tmp_path), "--baseline", "box_loss=giou"])
    found = {c.point: c.result for c in out["comparisons"]}
    assert set(found) == {"box_loss=ciou", "box_loss=iou"}  # the baseline is not compared with itself
    ciou, iou = found["box_loss=ciou"], found["box_loss=iou"]
    assert ciou.differences == pytest.approx({0: 0.02, 1: 0.02, 2: 0.03})
    assert ciou.interval.low > 0 and ciou.verdict == "higher"
    assert iou.differences == pytest.approx({0: -0.10, 1: 0.05, 2: -0.02})
    assert iou.interval.low < 0 < iou.interval.high and iou.verdict == TIE
    table = rows(tmp_path / "paired.csv")
    assert [r["point"] for r in table] == ["box_loss=ciou", "box_loss=iou"]  # test metrics only, rows in order
    assert float(table[0]["delta_mean"]) == pytest.approx(0.07 / 3)
    assert TIE in (tmp_path / "paired.md").read_text()


def test_pairing_is_by_seed_not_by_position():
    """Seeds listed in different orders still pair 0 with 0: a constant +0.01 per seed is found exactly."""
    result = paired({2: 0.81, 0: 0.71, 1: 0.51}, {0: 0.70, 1: 0.50, 2: 0.80})
    assert result.differences == pytest.approx({0: 0.01, 1: 0.01, 2: 0.01})
    assert result.interval.std == pytest.approx(0.0, abs=1e-12) and result.verdict == "higher"


def test_a_missing_seed_is_left_out_with_a_message_and_too_few_seeds_is_a_tie():
    result = paired({0: 0.9, 1: 0.91, 2: 0.92, 3: 0.93}, {0: 0.5, 1: 0.5, 3: 0.5})
    assert sorted(result.differences) == [0, 1, 3] and "seeds without a pair left out: 2" in result.note
    few = paired({0: 0.9, 1: 0.91}, {0: 0.5, 1: 0.5})  # a large gap, but only two seeds
    assert few.verdict == TIE and f"fewer than {MIN_SEEDS}" in few.note
    assert paired({0: 0.9}, {1: 0.5}).verdict == "no paired seeds"


def test_the_report_writes_runs_csv_and_reads_it_back_as_evidence(tmp_path):
    sweep = tmp_path / "sweep"
    fake_sweep(sweep)
    report_main([str(sweep)])
    table = rows(sweep / "runs.csv")
    assert list(table[0]) == ["run", "box_loss", "seed", "fit_seconds", "test/map", "commit"]
    assert len(table) == 9 and table[0]["fit_seconds"] == "12.5" and table[0]["commit"] == "abc123"
    evidence = as_evidence(sweep, tmp_path / "evidence")
    out = report_main([str(evidence), "--baseline", "box_loss=giou", "--pair", "test/map=test/map"])
    assert not (evidence / "report.md").exists()  # the evidence folder keeps its own report, only paired.* is new
    ciou = next(c.result for c in out["comparisons"] if c.point == "box_loss=ciou" and c.baseline == "box_loss=giou")
    assert ciou.verdict == "higher" and math.isclose(ciou.interval.mean, 0.07 / 3)
    same = next(c.result for c in out["comparisons"] if c.baseline == "test/map")
    assert same.verdict == TIE and same.interval.mean == 0.0  # a metric against itself: no difference


def test_tables_from_an_evidence_runs_csv_cover_every_seed_and_name_a_missing_metric(tmp_path):
    sweep = tmp_path / "sweep"
    fake_sweep(sweep)
    evidence = as_evidence(sweep, tmp_path / "evidence")
    out = report_main([str(evidence), "--tables", "--metric", "test/map"])
    table = {row["box_loss"]: row for row in rows(evidence / "report.csv")}
    assert table["ciou"]["seeds"] == "3" and math.isclose(float(table["ciou"]["test/map_mean"]), 2.32 / 3)
    assert "val/map_mean" not in table["ciou"] and (evidence / "report_box_loss.png").exists()
    assert out["best"]["box_loss"] == "ciou" and (evidence / "runs.csv").read_text() == (sweep / "runs.csv").read_text()
    with pytest.raises(SystemExit, match="--metric val/map is not in .*runs.csv; its metrics are test/map"):
        report_main([str(evidence), "--tables", "--metric", "val/map"])


def test_a_baseline_that_is_not_a_swept_key_is_refused_with_the_keys(tmp_path):
    fake_sweep(tmp_path)
    with pytest.raises(SystemExit, match="--baseline loss is not a swept key; the swept keys are box_loss"):
        report_main([str(tmp_path), "--baseline", "loss=ce"])
    with pytest.raises(SystemExit, match="needs KEY=VALUE"):
        report_main([str(tmp_path), "--baseline", "giou"])


def test_the_baseline_can_come_from_the_runs_config(tmp_path):
    """``report: {baseline: box_loss=giou}`` in the experiment config stands for ``--baseline box_loss=giou``."""
    import yaml

    fake_sweep(tmp_path)
    for config in tmp_path.glob("*/.hydra/config.yaml"):
        config.write_text(yaml.safe_dump(yaml.safe_load(config.read_text()) | {"report": {"baseline": "box_loss=giou"}}))
    out = report_main([str(tmp_path)])
    assert {c.point for c in out["comparisons"]} == {"box_loss=ciou", "box_loss=iou"}


def test_one_metric_can_be_paired_with_two_others(tmp_path):
    rows_text = "".join(f"{s},x,{s},1.0,abc,{0.5 + s / 10},{0.4 + s / 10},{0.6 + s / 10}\n" for s in range(3))
    (tmp_path / "runs.csv").write_text("run,loss,seed,fit_seconds,commit,test/a,test/b,test/c\n" + rows_text)
    out = report_main([str(tmp_path), "--pair", "test/a=test/b", "--pair", "test/a=test/c"])
    assert {(c.metric, c.baseline) for c in out["comparisons"]} == {("test/a", "test/b"), ("test/a", "test/c")}


def simulation_sweep(folder, parameterisations=("xywh", "xyxy"), seeds=(0, 1, 2)):
    """Runs as ``train.py -m experiment=box_regression_simulation`` leaves them (``metrics.json``, no metrics.csv)."""
    import yaml

    job = 0
    for parameterisation in parameterisations:
        for seed in seeds:
            run = folder / str(job)
            (run / ".hydra").mkdir(parents=True)
            overrides = [f"run.parameterisation={parameterisation}", f"seed={seed}"]
            (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            config = {"optimized_metric": "sim/giou/final_iou", "report": {"baseline": "run.parameterisation=xywh"}}
            (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
            (run / "commit.txt").write_text("abc123\n")
            box_regression(str(run), ["l1", "giou"], points=1, iterations=3, seed=seed, parameterisation=parameterisation)
            job += 1


def test_a_simulation_sweep_gets_its_tables_runs_csv_and_paired_comparisons(tmp_path):
    simulation_sweep(tmp_path)
    out = report_main([str(tmp_path)])  # the baseline from the runs' report.baseline
    assert out["runs"] == 6 and out["metric"] == "sim/giou/final_iou" and out["params"] == ["run.parameterisation"]
    assert "sim/giou/final_iou" in (tmp_path / "report.md").read_text().splitlines()[0]
    table = rows(tmp_path / "runs.csv")
    sim = sorted(json.loads((tmp_path / "0" / "metrics.json").read_text()))
    assert list(table[0]) == ["run", "run.parameterisation", "seed", "fit_seconds", *sim, "commit"]
    assert table[0]["fit_seconds"] == "" and table[0]["commit"] == "abc123"
    found = {c.metric: c.result for c in out["comparisons"]}
    assert set(found) == set(sim) and {c.point for c in out["comparisons"]} == {"run.parameterisation=xyxy"}
    metric = "sim/l1/final_l1"
    by_folder = {int(r["run"]): json.loads((tmp_path / r["run"] / "metrics.json").read_text())[metric] for r in table}
    expected = {seed: by_folder[3 + seed] - by_folder[seed] for seed in range(3)}  # xyxy jobs 3-5, xywh jobs 0-2
    assert found[metric].differences == pytest.approx(expected)


def test_a_simulation_runs_csv_reads_back_with_its_sim_metrics_as_metrics(tmp_path):
    sweep = tmp_path / "sweep"
    simulation_sweep(sweep)
    evidence = as_evidence(sweep, tmp_path / "evidence")
    out = report_main([str(evidence), "--baseline", "run.parameterisation=xywh"])
    assert out["params"] == ["run.parameterisation"]  # sim/ columns are metrics, not swept overrides
    again = {(c.point, c.metric): c.result.differences for c in out["comparisons"]}
    first = {(c.point, c.metric): c.result.differences for c in report_main([str(sweep)])["comparisons"]}
    assert again.keys() == first.keys()
    for key, differences in first.items():
        assert again[key] == pytest.approx(differences, abs=1e-6), key


def test_a_configured_baseline_the_runs_lack_is_left_out_and_said_so(tmp_path, capsys):
    """``report.baseline`` on a partial sweep (no giou runs, or one not sweeping box_loss) pairs nothing; --baseline
    the same is refused."""
    import yaml

    fake_sweep(tmp_path / "partial", {k: v for k, v in OUTCOMES.items() if k != "giou"})
    fake_sweep(tmp_path / "one", {"ciou": OUTCOMES["ciou"]})
    for sweep in ("partial", "one"):
        for config in (tmp_path / sweep).glob("*/.hydra/config.yaml"):
            config.write_text(yaml.safe_dump(yaml.safe_load(config.read_text()) | {"report": {"baseline": "box_loss=giou"}}))
        assert report_main([str(tmp_path / sweep)])["comparisons"] == []
    said = capsys.readouterr().out
    assert "no runs at the baseline box_loss=giou; box_loss=ciou unpaired" in said
    assert "report.baseline box_loss not swept in these runs" in said
    with pytest.raises(SystemExit, match="no runs at the baseline box_loss=giou"):
        report_main([str(tmp_path / "partial"), "--baseline", "box_loss=giou"])
