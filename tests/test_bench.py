"""The benchmarks run end to end at toy size on CPU (they report numbers; no timing is asserted)."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
from pathlib import Path

import pytest

from bench.overhead import TASKS
from tests.helpers.data import write_fake_mnist


def test_throughput_reports_both_ways_and_their_ratio(data_dir):
    from bench.throughput import main

    result = main([f"paths.data_dir={data_dir}", "model=mlp", "--steps", "3", "--warmup", "1"])
    assert result["framework_samples_per_s"] > 0 and result["plain_samples_per_s"] > 0
    assert math.isclose(result["ratio"], result["framework_samples_per_s"] / result["plain_samples_per_s"], rel_tol=1e-2)


def test_speedrun_trains_each_seed_and_summarises(tmp_path):
    from bench.speedrun import main

    write_fake_mnist(tmp_path / "fashion_mnist", n_train=200, n_test=50)
    result = main(
        [
            f"paths.data_dir={tmp_path}", "trainer=cpu", "model.widths=[8,16]", "trainer.max_epochs=1",
            "trainer.check_val_every_n_epoch=1", "data.batch_size=32", "data.val_fraction=0.1",
            "trainer.enable_progress_bar=false", "--seeds", "0", "1",
        ]
    )  # fmt: skip
    assert [r["seed"] for r in result["runs"]] == [0, 1]
    assert all(r["fit_seconds"] > 0 and 0 <= r["test_acc"] <= 1 for r in result["runs"])
    assert result["reached_target"] == all(r["test_acc"] >= 0.93 for r in result["runs"])


def test_regression_losses_prints_the_reference_rows_alone_without_training(capsys):
    from bench.regression_losses import main

    main(["--references-only", "--overrides", "data=counts"])
    rows = {
        r[0]: r[1:3]
        for line in capsys.readouterr().out.splitlines()
        if (r := line.strip("| ").split(" | "))[0].endswith("(reference)")
    }
    assert set(rows) == {"training mean (reference)", "true f(x) (reference)"}
    assert float(rows["true f(x) (reference)"][0]) < float(rows["training mean (reference)"][0])  # the truth beats a constant


def test_one_epoch_reports_fit_time_samples_per_s_and_test_metrics(data_dir):
    from bench.one_epoch import main

    result = main(
        [f"paths.data_dir={data_dir}", "trainer=cpu", "model=mlp", "model.hidden=[16]", "trainer.enable_progress_bar=false"]
    )
    assert result["steps"] > 0 and result["fit_seconds"] > 0 and result["train_samples_per_s"] > 0
    assert "test/acc" in result["test"] and result["peak_mib"] == 0.0


def test_gpu_round3_script_parses_and_names_existing_benchmarks():
    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_round3.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    modules = set(re.findall(r"-m (bench\.\w+)", script.read_text()))
    assert {"bench.throughput", "bench.overhead", "bench.speedrun", "bench.losses", "bench.one_epoch"} <= modules
    assert all(importlib.util.find_spec(m) is not None for m in modules)


def test_streaming_loader_rate_and_report_on_a_tiny_folder(tmp_path, capsys):
    from bench.streaming import loader_rate, report
    from tests.helpers.folders import first_digits, write_image_folder

    folder = write_image_folder(tmp_path / "digits", first_digits(count=12))
    assert loader_rate(folder, workers=0, batches=2, batch_size=8) > 0
    runs = tmp_path / "runs.csv"
    runs.write_text("storage,seed,test/acc\nmemory,0,0.8\nstream,0,0.81\nmemory,1,0.7\nstream,1,0.69\n")
    report([runs])
    assert "stream - memory" in capsys.readouterr().out


@pytest.mark.parametrize("task", TASKS)
def test_overhead_reports_plain_bare_and_framework_per_step_with_a_breakdown(task, data_dir, tmp_path):
    from bench.overhead import main

    table = tmp_path / "table.md"
    (result,) = main([f"task={task}", f"paths.data_dir={data_dir}", "--steps", "3", "--warmup", "1", "--repeats", "1",
                      "--markdown", str(table)])  # fmt: skip
    assert result["task"] == task
    assert all(result[k] > 0 for k in ("plain_ms", "bare_ms", "framework_ms"))
    assert result["framework_minus_bare_ms"] == pytest.approx(result["framework_ms"] - result["bare_ms"], abs=1e-3)
    assert "total (profiled)" in result["breakdown_ms"] and any(k.startswith("[Callback]") for k in result["breakdown_ms"])
    rows = table.read_text().splitlines()
    assert rows[0].startswith("| recipe | plain ms | bare Lightning ms | framework ms | framework - bare | bare - plain")
    assert rows[2].startswith(f"| {task} |") and len(rows) == 3


def test_overhead_parts_times_every_way_against_bare(data_dir):
    from bench.overhead_parts import WAYS, main

    (result,) = main(["task=classification", f"paths.data_dir={data_dir}", "--steps", "3", "--warmup", "1", "--repeats", "1"])
    assert set(result["ms"]) == set(WAYS) and all(v > 0 for v in result["ms"].values())
    assert result["minus_bare_ms"]["bare"] == 0
    assert result["minus_bare_ms"]["framework"] == pytest.approx(result["ms"]["framework"] - result["ms"]["bare"], abs=1e-3)


def test_runs_csv_writes_the_reports_runs_csv_where_asked(tmp_path, capsys):
    from bench.runs_csv import main
    from recipes.results.report import main as report_main
    from tests.test_report_paired import simulation_sweep

    sweep = tmp_path / "sweep"
    simulation_sweep(sweep, seeds=(0, 1))
    (sweep / "1" / "commit.txt").unlink()  # a run that did not record its commit gets --commit
    main([str(sweep), str(tmp_path / "evidence" / "runs.csv"), "--commit", "def456"])
    assert "4 runs -> " in capsys.readouterr().out
    report_main([str(sweep), "--commit", "def456"])
    assert (tmp_path / "evidence" / "runs.csv").read_text() == (sweep / "runs.csv").read_text()
    commits = [line.rsplit(",", 1)[1] for line in (sweep / "runs.csv").read_text().splitlines()[1:]]
    assert commits == ["abc123", "def456", "abc123", "abc123"]
