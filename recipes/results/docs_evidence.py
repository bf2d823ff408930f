"""Check the results tables in docs/ against their evidence: ``python -m recipes.results.docs_evidence [files]``.

A table backed by evidence carries, just above it, an HTML comment naming its ``runs.csv`` (or another csv of
the evidence folder, such as the ``which_loss.csv`` a report wrote from it) and which rows and columns of that
file each cell shows (YAML)::

    <!-- evidence: docs/evidence/box_losses_cpu/runs.csv
    rows: {box_loss: [l1, iou, giou]}          # one filter per table row, in order (or a list of filter dicts)
    columns: [null, test/map, 100*test/acc]    # per column: null (not checked), an expression over metrics,
    -->                                        # {where: {...}, values: [expr, ...]} or {per_seed: expr}

A cell ``a ± b`` is the mean and sample std (ddof 1) over the row's runs; further numbers (``a ± b / c / d``) are
the means of the next ``values``; a ``per_seed`` cell lists one value per seed in seed order; a ``numbers`` cell
(``{numbers: [mean, std]}``) shows one expression per number, ``±`` included (a report row's own mean and std).
``minus: {...}`` in a cell subtracts, seed by seed, the same expression over the runs it selects (a paired
difference). Expressions name metrics (``test/acc``) or columns of the file (``ci_low``). A number agrees when it
equals the evidence at the rounding shown. Prints each disagreement; exit status 1 when there is one.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
MARK = re.compile(r"^<!-- evidence: (?P<spec>.*?)-->\s*\n(?P<table>(?:\|[^\n]*\|[ \t]*\n?)+)", re.S | re.M)
TOKEN = re.compile(r"±|[+-]?\d+(?:\.\d+)?")
METRIC = re.compile(r"\b(?:test|val)/\w+")
NAME = re.compile(r"\b(?:test|val)/\w+|\b[A-Za-z_]\w*")


@dataclass
class Table:
    """One marked table: the file, the line of its header, its evidence and the spec of its rows and columns."""

    doc: Path
    line: int
    runs: Path
    rows: list[dict]
    columns: list
    cells: list[list[str]]


def marked_tables(doc: Path) -> list[Table]:
    """Every table in ``doc`` with an evidence comment above it."""
    text = doc.read_text()
    tables = []
    for match in MARK.finditer(text):
        path, _, body = match["spec"].strip().partition("\n")
        spec = yaml.safe_load(body) or {}
        rows = spec.get("rows", [])
        if isinstance(rows, dict):  # {key: [v1, v2]} is shorthand for [{key: v1}, {key: v2}]
            (key, values), *_ = rows.items()
            rows = [{key: v} for v in values]
        lines = match["table"].strip().splitlines()
        cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines[2:]]
        tables.append(Table(doc, text[: match.start("table")].count("\n") + 1, ROOT / path.strip(), rows, spec["columns"], cells))
    return tables


def evaluate(expression: str, frame: pd.DataFrame) -> list[float]:
    """``expression`` (metric or column names, numbers, + - * /) for each row of ``frame``, in seed order."""
    names: dict[str, str] = {}

    def alias(match: re.Match) -> str:
        name = match[0]
        return names.setdefault(name, f"m{len(names)}") if METRIC.fullmatch(name) or name in frame else name

    code = NAME.sub(alias, expression)
    if "seed" in frame:
        frame = frame.sort_values("seed")
    return [float(eval(code, {"__builtins__": {}}, {a: row[n] for n, a in names.items()})) for _, row in frame.iterrows()]


def same(cell: object, value: object) -> bool:
    """A runs.csv cell equals a spec value: as numbers where both are (``1`` = ``1.0``), else as text."""
    try:
        return float(cell) == float(value)
    except (TypeError, ValueError):
        return str(cell) == str(value)


def select(frame: pd.DataFrame, where: dict) -> pd.DataFrame:
    """The runs whose overrides match every ``key: value`` of ``where``."""
    for key, value in where.items():
        frame = frame[[same(cell, value) for cell in frame[key]]]
    return frame


def agrees(shown: str, value: float) -> bool:
    """``shown`` is ``value`` at the number of decimals it is written with."""
    decimals = len(shown.partition(".")[2])
    return math.isfinite(value) and abs(float(shown) - value) <= 0.5 * 10**-decimals + 1e-9


def check_cell(cell: str, spec, frame: pd.DataFrame) -> list[str]:
    """The disagreements of one cell with its runs, as messages."""
    if isinstance(spec, str):
        spec = {"values": [spec]}
    runs = select(frame, spec.get("where", {}))
    if runs.empty:
        return [f"no runs match {spec.get('where')}"]
    base = select(frame, spec["minus"]) if "minus" in spec else None
    if base is not None and sorted(base["seed"]) != sorted(runs["seed"]):
        return [f"the runs of {spec.get('where')} and of minus {spec['minus']} have different seeds"]

    def evidence(expression: str) -> list[float]:
        values = evaluate(expression, runs)
        return values if base is None else [v - b for v, b in zip(values, evaluate(expression, base))]

    tokens = TOKEN.findall(cell.replace("**", "").replace("\N{MINUS SIGN}", "-"))
    numbers = [t for t in tokens if t != "±"]
    if "numbers" in spec:
        if len(numbers) != len(spec["numbers"]):
            return [f"{cell!r} shows {len(numbers)} numbers, the spec names {len(spec['numbers'])}"]
        means = [statistics.mean(evidence(e)) for e in spec["numbers"]]
        return [f"{e} {m:.6g} shown as {n}" for n, e, m in zip(numbers, spec["numbers"], means) if not agrees(n, m)]
    if "per_seed" in spec:
        expected = evidence(spec["per_seed"])
        if len(numbers) != len(expected):
            return [f"{cell!r} shows {len(numbers)} values, the evidence has {len(expected)} seeds"]
        return [f"{n} != {e:.6g} (seed {i})" for i, (n, e) in enumerate(zip(numbers, expected)) if not agrees(n, e)]
    problems = []
    for expression in spec["values"]:
        if not tokens:
            return problems + [f"{cell!r} shows no number for {expression}"]
        values = evidence(expression)
        mean = statistics.mean(values)
        shown = tokens.pop(0)
        if not agrees(shown, mean):
            problems.append(f"{expression} mean {mean:.6g} shown as {shown}")
        if tokens[:1] == ["±"]:
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            shown = tokens[1] if len(tokens) > 1 else "?"
            tokens = tokens[2:]
            if not agrees(shown, std):
                problems.append(f"{expression} std {std:.6g} shown as {shown}")
    return problems


def check_table(table: Table) -> list[str]:
    """Every disagreement of ``table`` with its evidence file, as ``file:line: row ...: message``."""
    doc = table.doc.relative_to(ROOT) if table.doc.is_relative_to(ROOT) else table.doc
    where = f"{doc}:{table.line}"
    if not table.runs.exists():
        return [f"{where}: evidence {table.runs} is missing"]
    frame = pd.read_csv(table.runs)
    if len(table.rows) != len(table.cells):
        return [f"{where}: the spec names {len(table.rows)} rows, the table has {len(table.cells)}"]
    problems = []
    for row_spec, cells in zip(table.rows, table.cells):
        row_spec = dict(row_spec)
        columns = row_spec.pop("columns", table.columns)
        runs = select(frame, row_spec)
        for spec, cell in zip(columns, cells):
            if spec is None or not cell:
                continue
            problems += [f"{where}: row {cells[0]!r}: {m}" for m in check_cell(cell, spec, runs)]
    return problems


def docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="markdown files (default: README.md and docs/*.md)")
    args = parser.parse_args(argv)
    tables = [t for doc in (args.files or docs()) for t in marked_tables(doc.resolve())]
    problems = [p for t in tables for p in check_table(t)]
    print("\n".join(problems) or f"{len(tables)} tables agree with their evidence")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
