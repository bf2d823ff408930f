"""The results tables in docs/ agree with their evidence (``recipes.results.docs_evidence``), and the checker
catches a number that does not."""

from __future__ import annotations

import pytest

from recipes.results.docs_evidence import ROOT, check_table, docs, marked_tables

TABLES = [t for doc in docs() for t in marked_tables(doc)]


def test_every_results_table_with_evidence_is_marked():
    """The experiments with a runs.csv each have their table wired (so a new one is not silently unchecked)."""
    wired = {t.runs.parent.name for t in TABLES}
    with_runs = {p.parent.name for p in (ROOT / "docs" / "evidence").glob("*/runs.csv")}
    assert with_runs - wired <= {"segmentation_losses_3000canvases_cpu"}  # quoted in prose only


@pytest.mark.parametrize("table", TABLES, ids=lambda t: f"{t.doc.name}:{t.line}")
def test_docs_table_agrees_with_its_evidence_at_the_shown_rounding(table):
    assert check_table(table) == []


def test_a_number_off_by_one_in_its_last_digit_is_caught(tmp_path):
    evidence = tmp_path / "runs.csv"
    evidence.write_text("run,loss,seed,test/map\n0,giou,0,0.751\n1,giou,1,0.761\n2,ciou,0,0.80\n3,ciou,1,0.80\n")
    doc = tmp_path / "doc.md"
    spec = f"<!-- evidence: {evidence}\nrows: {{loss: [giou, ciou]}}\ncolumns: [null, test/map]\n-->\n"
    doc.write_text(spec + "| loss | mAP |\n|---|---|\n| giou | 0.756 ± 0.007 |\n| ciou | **0.801** |\n")
    (table,) = marked_tables(doc)
    assert check_table(table) == [f"{doc}:5: row 'ciou': test/map mean 0.8 shown as 0.801"]  # 0.756 ± 0.007 agrees
