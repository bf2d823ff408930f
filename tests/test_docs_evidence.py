"""The results tables in docs/ agree with their evidence (``recipes.results.docs_evidence``), and the checker
catches a number that does not."""

from __future__ import annotations

import pytest

from recipes.results.docs_evidence import ROOT, check_table, docs, marked_tables

TABLES = [t for doc in docs() for t in marked_tables(doc)]


def test_every_results_table_with_evidence_is_marked():
    """The experiments with a runs.csv each have their table wired (so a new one is not silently unchecked)."""
    wired = {f.parent.name for t in TABLES for f in t.files()}
    with_runs = {p.parent.name for p in (ROOT / "docs" / "evidence").glob("*/runs.csv")}
    assert with_runs - wired <= {"segmentation_losses_3000canvases_cpu"}  # quoted in prose only


@pytest.mark.parametrize("table", TABLES, ids=lambda t: f"{t.doc.name}:{t.line}")
def test_docs_table_agrees_with_its_evidence_at_the_shown_rounding(table):
    assert check_table(table) == []


CAUGHT = {  # evidence file, its text, rows, columns, the marked table, the one disagreement expected (row 5 is wrong)
    "a_number_off_by_one_in_its_last_digit": (  # 0.756 ± 0.007 agrees
        "runs.csv",
        "run,loss,seed,test/map\n0,giou,0,0.751\n1,giou,1,0.761\n2,ciou,0,0.80\n3,ciou,1,0.80\n",
        "{loss: [giou, ciou]}",
        "[null, test/map]",
        "| loss | mAP |\n|---|---|\n| giou | 0.756 ± 0.007 |\n| ciou | **0.801** |\n",
        "row 'ciou': test/map mean 0.8 shown as 0.801",
    ),
    "a_paired_difference_seed_by_seed_with_minus_signs": (
        "runs.csv",
        "storage,seed,test/acc\nmemory,0,0.80\nmemory,1,0.70\nstream,0,0.75\nstream,1,0.90\n",
        "[{seed: 0}, {seed: 1}, {}]",
        "[null, {where: {storage: stream}, minus: {storage: memory}, values: [100*test/acc]}]",
        "| seed | stream − memory |\n|---|---|\n| 0 | −5.0 |\n| 1 | +20.0 |\n| mean | +7.5 ± 17.0 |\n",
        "row 'mean': 100*test/acc std 17.6777 shown as 17.0",
    ),
    "a_report_row_s_own_columns_as_numbers": (
        "which_loss.csv",
        "loss,seeds,mean,std,ci_low,ci_high\nhuber,3,0.478,0.0042,0.4675,0.4884\n",
        "{loss: [huber]}",
        "[null, seeds, {numbers: [mean, std]}, {numbers: [ci_low, ci_high]}]",
        "| loss | seeds | mean ± std | interval |\n|---|---|---|---|\n| huber | 3 | 0.478 ± 0.0042 | [0.4675, 0.4894] |\n",
        "row 'huber': ci_high 0.4884 shown as 0.4894",
    ),
    "medians_of_paired_differences_and_ratios_in_one_cell": (  # rounds share a seed and pair in file order
        "runs.csv",
        "task,way,seed,ms\na,framework,0,2\na,bare,0,1\na,framework,0,3\na,bare,0,1\na,framework,0,10\na,bare,0,4\n",
        "{task: [a]}",
        "[null, [{where: {way: framework}, minus: {way: bare}, median: true, values: [ms]}, "
        "{where: {way: framework}, over: {way: bare}, median: true, values: [ms]}], {where: {way: compiled}, values: [ms]}]",
        "| task | framework - bare -> framework / bare | compiled |\n|---|---|---|\n| a | +2.0 -> 2.6 | - |\n",
        "row 'a': ms median 2.5 shown as 2.6",
    ),
    "a_run_without_an_override_and_a_nested_metric_name": (
        "runs.csv",
        "loss,task.homoscedastic,seed,sim/l1/final_iou\nnll,True,0,0.5\nnll,,0,0.7\n",
        "[{task.homoscedastic: null}, {task.homoscedastic: true}]",
        "[null, sim/l1/final_iou]",
        "| variance | IoU |\n|---|---|\n| per row | 0.70 |\n| one | 0.51 |\n",
        "row 'one': sim/l1/final_iou mean 0.5 shown as 0.51",
    ),
    "a_count_a_median_and_a_range_and_a_sum_of_fit_seconds": (
        "runs.csv",
        "phase,seed,fit_seconds\ntune,0,7.4\ntune,0,9.0\nfinal,0,8.8\nfinal,1,17.6\nfinal,2,8.0\n",
        "[{}]",
        "[null, [{where: {phase: tune}, stat: count, values: [fit_seconds]}, {where: {phase: final}, stat: count, "
        "values: [fit_seconds]}], [{stat: median, values: [fit_seconds]}, {stat: min, values: [fit_seconds]}, "
        "{stat: max, values: [fit_seconds]}], {stat: sum, values: [fit_seconds / 60]}, "
        "{where: {seed: [1, 2]}, stat: min, values: [fit_seconds]}]",  # seeds 1 and 2 only: 8.0, not 7.4
        "| run | runs | fit s | summed | later |\n|---|---|---|---|---|\n| cls | 2 + 3 | 8.8 (7.4–17.5) | 0.85 min | 8.0 |\n",
        "row 'cls': fit_seconds max 17.6 shown as 17.5",
    ),
    "thousands_with_commas_and_a_per_step_expression": (  # 0.70 ms = 1000 * 512 * (1/60242 - 1/65664)
        "runs.csv",
        "overrides,batch,framework_samples_per_s,plain_samples_per_s\na,512,60242.3,65663.7\nb,128,7922.6,9852.9\n",
        "{overrides: [a, b]}",
        "[null, framework_samples_per_s, plain_samples_per_s, "
        "1000 * batch * (1 / framework_samples_per_s - 1 / plain_samples_per_s)]",
        "| run | fw | plain | ms |\n|---|---|---|---|\n| a | 60,242 | 65,664 | 0.70 |\n| b | 7,923 | 9,835 | 3.2 |\n",
        "row 'b': plain_samples_per_s mean 9852.9 shown as 9835",
    ),
}


@pytest.mark.parametrize("case", CAUGHT.values(), ids=CAUGHT)
def test_the_checker_catches_a_wrong_number(tmp_path, case):
    name, evidence, rows, columns, table, expected = case
    (tmp_path / name).write_text(evidence)
    doc = tmp_path / "doc.md"
    doc.write_text(f"<!-- evidence: {tmp_path / name}\nrows: {rows}\ncolumns: {columns}\n-->\n{table}")
    (marked,) = marked_tables(doc)
    assert check_table(marked) == [f"{doc}:5: {expected}"]


def test_a_row_checked_against_its_own_evidence_file_and_an_unknown_stat(tmp_path):
    """``evidence:`` in a row switches that row to another file; a ``stat`` not in the list is named."""
    (tmp_path / "a.csv").write_text("seed,fit_seconds\n0,2\n1,4\n")
    (tmp_path / "b.csv").write_text("seed,fit_seconds\n0,10\n")
    doc = tmp_path / "doc.md"
    b = tmp_path / "b.csv"
    rows = f"[{{}}, {{evidence: {b}}}, {{evidence: {b}, columns: [null, {{stat: mode, values: [fit_seconds]}}]}}]"
    table = "| sweep | fit s |\n|---|---|\n| a | 6 |\n| b | 11 |\n| b | 10 |\n"
    doc.write_text(
        f"<!-- evidence: {tmp_path / 'a.csv'}\nrows: {rows}\ncolumns: [null, {{stat: sum, values: [fit_seconds]}}]\n-->\n{table}"
    )
    (marked,) = marked_tables(doc)
    assert marked.files() == {tmp_path / "a.csv", tmp_path / "b.csv"}
    stats = "['count', 'max', 'mean', 'median', 'min', 'sum']"
    assert check_table(marked) == [
        f"{doc}:5: row 'b': fit_seconds sum 10 shown as 11",
        f"{doc}:5: row 'b': stat 'mode' is not one of {stats}",
    ]
