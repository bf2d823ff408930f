"""Write ``docs/losses.md`` from the registry: ``python -m losses.docs`` (``--check``: fail when it is stale).

Every registered loss gets a row in the table of its kind, read from the class itself:

- formula: the first sentence of the docstring (the house style puts the formula there);
- hyperparameters: the constructor's signature with its defaults (and the allowed reductions);
- reference: the papers the class declares in ``citations`` (``("Lin et al. 2017",)``), then every
  torch/torchvision function its docstring names (``torch.nn.CrossEntropyLoss``, "torch's KLDivLoss");
- when to use it: the docstring's other sentences.

Nothing is written by hand, so a new loss is documented by being registered; rerun after adding one.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import losses
from losses.registry import KINDS, LossSpec, spec

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "losses.md"
CONFIGS = ROOT / "configs" / "loss"
COMMAND = "python -m losses.docs"

LIBRARY = re.compile(r"\b(?:torch|torchvision)(?:\.\w+)+|\b(?:torch|torchvision)'s \w+")
CODE = re.compile(r"``(.+?)``")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\x00])")


@dataclass(frozen=True)
class LossDoc:
    """What the table says about one loss."""

    name: str
    kind: str
    inputs: str
    formula: str
    hyperparameters: str
    reference: str
    use: str
    config: str | None


def sentences(text: str) -> list[str]:
    """Split a docstring into sentences, never inside a ``code`` span nor after ``et al.``/``e.g.``."""
    spans: list[str] = []

    def hide(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    hidden = CODE.sub(hide, " ".join(text.split()))
    parts = [p.strip() for p in SENTENCE_END.split(hidden) if p.strip()]
    merged: list[str] = []
    for part in parts:  # "Lin et al. 2017" is split only when a capital follows "al."; glue it back
        if merged and re.search(r"\b(?:et al|e\.g|i\.e|vs)\.$", merged[-1]):
            merged[-1] += " " + part
        else:
            merged.append(part)
    return [re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], s) for s in merged]


def markdown(text: str) -> str:
    """reST ``code`` to Markdown `code`, with table pipes escaped."""
    return CODE.sub(lambda m: f"`{m.group(1)}`", text).replace("|", "\\|")


def library_names(doc: str) -> list[str]:
    """The torch/torchvision functions named in ``doc``, in order of appearance, once each."""
    found = LIBRARY.findall(" ".join(doc.split()))
    return list(dict.fromkeys(name if "'" in name else f"``{name}``" for name in found))


def references(cls: type) -> list[str]:
    """The papers ``cls`` declares in ``citations``, then the torch/torchvision functions its docstring names."""
    return list(dict.fromkeys([*getattr(cls, "citations", ()), *library_names(inspect.getdoc(cls) or "")]))


def split_docstring(doc: str) -> tuple[str, str]:
    """(formula, when to use) from a loss docstring: its first sentence and the others."""
    found = sentences(doc)
    return (found[0], " ".join(found[1:])) if found else ("", "")


def format_default(value: object) -> str:
    """A default as it would be written in the YAML config."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value
    return repr(value)


def hyperparameters(entry: LossSpec) -> str:
    """``name=default`` for each constructor argument, with the reductions the loss accepts."""
    parts = []
    for param in inspect.signature(entry.cls.__init__).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = "required" if param.default is param.empty else format_default(param.default)
        text = f"`{param.name}={default}`"
        if param.name == "reduction":
            text += f" ({', '.join(getattr(entry.cls, 'reductions', ()))})"
        parts.append(text)
    return ", ".join(parts) or "none"


def inputs(entry: LossSpec) -> str:
    """The arguments of ``forward``: what a task passes to the loss."""
    names = [p for p in inspect.signature(entry.cls.forward).parameters if p != "self"]
    return f"`({', '.join(names)})`"


def describe(name: str) -> LossDoc:
    """Everything the table needs about the registered loss ``name``."""
    entry = spec(name)
    formula, use = split_docstring(inspect.getdoc(entry.cls) or "")
    config = CONFIGS / f"{name}.yaml"
    return LossDoc(
        name=name,
        kind=entry.kind,
        inputs=inputs(entry),
        formula=markdown(formula),
        hyperparameters=hyperparameters(entry),
        reference=markdown("; ".join(references(entry.cls))) or "—",
        use=markdown(use) or "—",
        config=f"../configs/loss/{name}.yaml" if config.exists() else None,
    )


def kind_intro(names: list[str]) -> str:
    """The first line of the docstrings of the family modules that hold a kind's losses."""
    lines = []
    for name in names:
        doc = (inspect.getdoc(sys.modules[spec(name).cls.__module__]) or "").strip().splitlines()
        if doc and markdown(doc[0]) not in lines:
            lines.append(markdown(doc[0]))
    return " ".join(lines)


def render() -> str:
    """The whole of ``docs/losses.md`` for the losses registered now, grouped by kind."""
    names = losses.available()
    kinds = [k for k in KINDS if losses.available(k)]
    out = [
        "# Losses",
        "",
        f"Generated from the loss registry by `{COMMAND}`: do not edit by hand; a test fails when this file is stale.",
        f"{len(names)} losses in {len(kinds)} kind{'' if len(kinds) == 1 else 's'}. "
        "Choose one with `loss=NAME` (or a task's other slot, e.g. `box_loss=NAME`) and set a hyperparameter with "
        "`loss.KEY=VALUE`; the config file of each loss lists them all.",
        "Every loss takes `reduction` and computes in float32 under autocast.",
        "",
        "| kind | losses |",
        "|---|---|",
    ]
    out += [f"| [{k}](#{k}) | {', '.join(f'`{n}`' for n in losses.available(k))} |" for k in kinds]
    for kind in kinds:
        kind_names = losses.available(kind)
        out += ["", f"## {kind}", ""]
        intro = kind_intro(kind_names)
        if intro:
            out += [intro, ""]
        out += [
            "| loss | inputs | formula | hyperparameters (defaults) | reference | when to use it |",
            "|---|---|---|---|---|---|",
        ]
        for name in kind_names:
            d = describe(name)
            label = f"[`{d.name}`]({d.config})" if d.config else f"`{d.name}`"
            out.append(f"| {label} | {d.inputs} | {d.formula} | {d.hyperparameters} | {d.reference} | {d.use} |")
    out += [
        "",
        "## Curves",
        "",
        "`python -m losses.plot` draws each regression loss and its gradient against the residual, and each",
        "margin loss against its score, distance or similarity (whichever are registered), into `docs/img/`:",
        "",
        "![regression losses](img/regression.png)",
        "",
        "![margin losses](img/margin.png)",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run `{COMMAND}` and commit the result", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date ({len(losses.available())} losses)")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(losses.available())} losses)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
