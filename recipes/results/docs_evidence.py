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
difference); ``over: {...}`` divides the same way (a paired ratio); ``stat: median`` (or ``median: true``), ``min``,
``max``, ``sum`` or ``count`` shows that statistic of the runs instead of their mean. A row's ``evidence: <file>``
checks that row against another file (one table over several sweeps). A ``where`` value that is a list matches any of
its values (``seed: [2, 3, 4]``).
A list of such cells checks the cell's numbers in turn (``before -> after``); a cell ``-`` says the evidence has no
value. Expressions name metrics (``test/acc``, ``sim/giou/final_iou``) or columns of the file (``ci_low``). A number
agrees when it equals the evidence at the rounding shown (``63,847``: commas between thousands). Prints each
disagreement; exit status 1 when there is one.
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
TOKEN = re.compile(r"±|[+-]?\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|[+-]?\d+(?:\.\d+)?")  # 63,847 is one number
METRIC = re.compile(r"\b(?:test|val)/\w+|\bsim/\w+/\w+")
NAME = re.compile(r"\b(?:test|val)/\w+|\bsim/\w+/\w+|\b[A-Za-z_]\w*")


STATS = {"mean": statistics.mean, "median": statistics.median, "min": min, "max": max, "sum": math.fsum, "count": len}


@dataclass
class Table:
    """One marked table: the file, the line of its header, its evidence and the spec of its rows and columns."""

    doc: Path
    line: int
    runs: Path
    rows: list[dict]
    columns: list
    cells: list[list[str]]

    def files(self) -> set[Path]:
        """The evidence files the table is checked against: its own and any a row names."""
        return {self.runs, *(ROOT / row["evidence"] for row in self.rows if "evidence" in row)}


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
        frame = frame.sort_values("seed", kind="stable")  # rows of one seed (rounds) keep their order
    return [float(eval(code, {"__builtins__": {}}, {a: row[n] for n, a in names.items()})) for _, row in frame.iterrows()]


def same(cell: object, value: object) -> bool:
    """A runs.csv cell equals a spec value: as numbers where both are (``1`` = ``1.0``), else as text."""
    try:
        return float(cell) == float(value)
    except (TypeError, ValueError):
        return str(cell) == str(value)


def select(frame: pd.DataFrame, where: dict) -> pd.DataFrame:
    """The runs whose overrides match every ``key: value`` of ``where`` (``null``: the run has no such override; a
    list: any of its values)."""
    for key, value in where.items():
        wanted = value if isinstance(value, list) else [value]
        frame = frame[[any(pd.isna(cell) if v is None else same(cell, v) for v in wanted) for cell in frame[key]]]
    return frame


def agrees(shown: str, value: float) -> bool:
    """``shown`` is ``value`` at the number of decimals it is written with."""
    decimals = len(shown.partition(".")[2])
    return math.isfinite(value) and abs(float(shown) - value) <= 0.5 * 10**-decimals + 1e-9


def check_cell(cell: str, spec, frame: pd.DataFrame) -> list[str]:
    """The disagreements of one cell with its runs, as messages (a list of specs checks its numbers in turn)."""
    tokens = [t.replace(",", "") for t in TOKEN.findall(cell.replace("**", "").replace("\N{MINUS SIGN}", "-"))]
    specs = spec if isinstance(spec, list) else [spec]
    problems = []
    for i, part in enumerate(specs):
        found, tokens = check_numbers(cell, tokens, part, frame, last=i == len(specs) - 1)
        problems += found
    return problems


def check_numbers(cell: str, tokens: list[str], spec, frame: pd.DataFrame, last: bool) -> tuple[list[str], list[str]]:
    """The disagreements of the next numbers of ``cell`` with one spec, and the tokens left after them."""
    if isinstance(spec, str):
        spec = {"values": [spec]}
    runs = select(frame, spec.get("where", {}))
    if cell.strip() in {"-", "\N{EN DASH}"}:  # a dash shows that the evidence has no value
        empty = runs.empty or all(math.isnan(v) for e in spec.get("values", []) for v in evaluate(e, runs))
        return ([] if empty else [f"{cell!r} but {len(runs)} runs match {spec.get('where')}"]), []
    if runs.empty:
        return [f"no runs match {spec.get('where')}"], tokens
    paired = {op: select(frame, spec[op]) for op in ("minus", "over") if op in spec}
    for op, base in paired.items():
        if sorted(base["seed"]) != sorted(runs["seed"]):
            return [f"the runs of {spec.get('where')} and of {op} {spec[op]} have different seeds"], tokens
    stat = spec.get("stat", "median" if spec.get("median") else "mean")
    if stat not in STATS:
        return [f"stat {stat!r} is not one of {sorted(STATS)}"], tokens
    average = STATS[stat]

    def evidence(expression: str) -> list[float]:
        values = evaluate(expression, runs)
        if "minus" in paired:
            values = [v - b for v, b in zip(values, evaluate(expression, paired["minus"]))]
        if "over" in paired:
            values = [v / b for v, b in zip(values, evaluate(expression, paired["over"]))]
        return values

    numbers = [t for t in tokens if t != "±"]
    if "numbers" in spec:
        count = len(spec["numbers"])
        if len(numbers) < count or (last and len(numbers) != count):
            return [f"{cell!r} shows {len(numbers)} numbers, the spec names {count}"], []
        means = [average(evidence(e)) for e in spec["numbers"]]
        found = [f"{e} {m:.6g} shown as {n}" for n, e, m in zip(numbers, spec["numbers"], means) if not agrees(n, m)]
        return found, rest(tokens, count)
    if "per_seed" in spec:
        expected = evidence(spec["per_seed"])
        if len(numbers) < len(expected) or (last and len(numbers) != len(expected)):
            return [f"{cell!r} shows {len(numbers)} values, the evidence has {len(expected)} seeds"], []
        found = [f"{n} != {e:.6g} (seed {i})" for i, (n, e) in enumerate(zip(numbers, expected)) if not agrees(n, e)]
        return found, rest(tokens, len(expected))
    problems = []
    for expression in spec["values"]:
        if not tokens:
            return problems + [f"{cell!r} shows no number for {expression}"], tokens
        values = evidence(expression)
        mean = average(values)
        shown = tokens.pop(0)
        if not agrees(shown, mean):
            problems.append(f"{expression} {stat} {mean:.6g} shown as {shown}")
        if tokens[:1] == ["±"]:
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            shown = tokens[1] if len(tokens) > 1 else "?"
            tokens = tokens[2:]
            if not agrees(shown, std):
                problems.append(f"{expression} std {std:.6g} shown as {shown}")
    return problems, tokens


def rest(tokens: list[str], count: int) -> list[str]:
    """``tokens`` after their first ``count`` numbers."""
    positions = [i for i, t in enumerate(tokens) if t != "±"]
    return tokens[positions[count - 1] + 1 :] if count else tokens


def check_table(table: Table) -> list[str]:
    """Every disagreement of ``table`` with its evidence file, as ``file:line: row ...: message``."""
    doc = table.doc.relative_to(ROOT) if table.doc.is_relative_to(ROOT) else table.doc
    where = f"{doc}:{table.line}"
    missing = sorted(str(f) for f in table.files() if not f.exists())
    if missing:
        return [f"{where}: evidence {', '.join(missing)} is missing"]
    frames = {f: pd.read_csv(f) for f in table.files()}
    if len(table.rows) != len(table.cells):
        return [f"{where}: the spec names {len(table.rows)} rows, the table has {len(table.cells)}"]
    problems = []
    for row_spec, cells in zip(table.rows, table.cells):
        row_spec = dict(row_spec)
        columns = row_spec.pop("columns", table.columns)
        frame = frames[ROOT / row_spec.pop("evidence")] if "evidence" in row_spec else frames[table.runs]
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
