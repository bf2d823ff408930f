"""Time forward + backward of every registered loss against its reference: ``python -m bench.losses``.

For each loss with an entry in ``bench/references/__init__.py`` (the others are listed as skipped), both our
module and the reference run on the same seeded float32 inputs at a realistic size per kind
(``--sizes kind=AxB ...`` overrides), back to back in alternating order, after ``--warmup`` rounds; the table
gives the median over ``--repeats`` of each, the median of the paired ratios (ours / reference, each pair
measured back to back, so load from other processes cancels: < 1 is faster), and the relative difference of
the two values and of their gradients, so a wrong entry or loss shows at once. The value checks of a loss run
on its first calls only, here the agreement check's: the timed calls are a training run's steady state.

    python -m bench.losses                       # CPU, realistic sizes
    python -m bench.losses --device cuda         # on the GPU
    python -m bench.losses --sizes classification=1024x100 --losses ce focal
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

import losses
from bench.common import synchronize
from bench.references import REFERENCES, SIZES, TOY_SIZES, Reference, Size
from losses.registry import KINDS


@dataclass(frozen=True)
class Row:
    """One measured loss configuration."""

    name: str
    kind: str
    label: str
    size: Size
    ours_ms: float
    reference_ms: float
    source: str
    value_diff: float
    grad_diff: float
    ratio: float  # the median of the paired ratios ours / reference


@dataclass
class Report:
    """The rows, and the losses that could not be measured, with why."""

    rows: list[Row]
    skipped: list[str]  # registered, but no reference entry
    failed: dict[str, str]  # entry name -> error message
    device: str

    def table(self) -> str:
        lines = [
            "| loss | kind | size | ours ms | reference ms | ratio | reference | value rel. diff | grad rel. diff |",
            "|---|---|---|---:|---:|---:|---|---:|---:|",
        ]
        for r in self.rows:
            name = f"{r.name} ({r.label})" if r.label else r.name
            lines.append(
                f"| {name} | {r.kind} | {'x'.join(map(str, r.size))} | {r.ours_ms:.3f} | {r.reference_ms:.3f} | "
                f"{r.ratio:.2f} | {r.source} | {r.value_diff:.1e} | {r.grad_diff:.1e} |"
            )
        if self.failed:
            lines += ["", "failed: " + "; ".join(f"{k}: {v}" for k, v in self.failed.items())]
        if self.skipped:
            lines += ["", "skipped (no entry in bench/references/__init__.py): " + ", ".join(self.skipped)]
        return "\n".join(lines)


def leaves(inputs: Sequence[Tensor], grad_inputs: Sequence[int]) -> list[Tensor]:
    """Fresh leaf tensors for the differentiated inputs, the others as they are."""
    return [x.detach().requires_grad_(True) if i in grad_inputs else x for i, x in enumerate(inputs)]


def forward_backward(fn: Callable[..., Tensor], inputs: Sequence[Tensor], grad_inputs: Sequence[int]) -> tuple[Tensor, list]:
    """The value and the gradients of ``fn`` with respect to the differentiated inputs."""
    xs = leaves(inputs, grad_inputs)
    value = fn(*xs)
    value.backward()
    return value.detach(), [xs[i].grad for i in grad_inputs]


def relative_difference(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max(max |b|, tiny): how far ours is from the reference."""
    scale = float(b.abs().max()) if b.numel() else 0.0
    return float((a - b).abs().max()) / max(scale, 1e-12) if b.numel() else 0.0


def time_pair(
    ours: Callable[..., Tensor],
    reference: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    grad_inputs: Sequence[int],
    device: torch.device,
    repeats: int,
    warmup: int,
) -> tuple[float, float, float]:
    """Median milliseconds of forward + backward for ``ours`` and ``reference``, and the median of their paired
    ratios; each repeat runs the two back to back, first one then the other first, so neither gains from order."""
    times: dict[str, list[float]] = {"ours": [], "reference": []}
    for i in range(warmup + repeats):
        pair = (("ours", ours), ("reference", reference))
        for key, fn in pair if i % 2 == 0 else pair[::-1]:
            xs = leaves(inputs, grad_inputs)
            synchronize(device)
            start = time.perf_counter()
            fn(*xs).backward()
            synchronize(device)
            if i >= warmup:
                times[key].append((time.perf_counter() - start) * 1e3)
    ratios = [a / b if b > 0 else math.inf for a, b in zip(times["ours"], times["reference"])]
    return statistics.median(times["ours"]), statistics.median(times["reference"]), statistics.median(ratios)


def measure(name: str, ref: Reference, size: Size, device: torch.device, repeats: int, warmup: int) -> Row:
    """Build our loss with the entry's hyperparameters, check it against the reference, time both."""
    hparams = ref.hparams_for(size)
    loss = losses.build(name, **hparams).to(device)
    # the agreement check below is the one call that runs the value checks (they read tensors back to the host,
    # on the first calls only): the timed calls are the steady state of a training run
    loss.value_check_calls = 1
    inputs = ref.make_inputs(size, device)

    def reference(*xs: Tensor) -> Tensor:
        return ref.value(*xs, **hparams)

    ours_value, ours_grads = forward_backward(loss, inputs, ref.grad_inputs)
    ref_value, ref_grads = forward_backward(reference, inputs, ref.grad_inputs)
    grad_diff = max((relative_difference(a, b) for a, b in zip(ours_grads, ref_grads)), default=0.0)
    ours_ms, ref_ms, ratio = time_pair(loss, reference, inputs, ref.grad_inputs, device, repeats, warmup)
    return Row(
        name=name,
        kind=losses.kind_of(name),
        label=ref.label,
        size=size,
        ours_ms=ours_ms,
        reference_ms=ref_ms,
        source=ref.source,
        value_diff=relative_difference(ours_value, ref_value),
        grad_diff=grad_diff,
        ratio=ratio,
    )


def run(
    names: Sequence[str] | None = None,
    sizes: dict[str, Size] | None = None,
    device: str = "cpu",
    repeats: int = 10,
    warmup: int = 2,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Measure every registered loss (or ``names``) that has a reference entry, in registry kind order."""
    dev = torch.device(device)
    sizes = {**SIZES, **(sizes or {})}
    chosen = list(names) if names else [n for kind in KINDS for n in losses.available(kind)]
    report = Report(rows=[], skipped=[], failed={}, device=device)
    for name in chosen:
        entries = REFERENCES.get(name)
        if not entries:
            report.skipped.append(name)
            continue
        for ref in entries:
            key = f"{name} ({ref.label})" if ref.label else name
            try:
                row = measure(name, ref, sizes[losses.kind_of(name)], dev, repeats, warmup)
            except Exception as err:  # one broken entry must not hide the others: report it
                report.failed[key] = f"{type(err).__name__}: {err}"
                continue
            report.rows.append(row)
            if log:
                log(f"{key}: ours {row.ours_ms:.3f} ms, reference {row.reference_ms:.3f} ms")
    return report


def parse_sizes(items: Sequence[str]) -> dict[str, Size]:
    """``["classification=4096x1000", "regression=1000000"]`` -> ``{kind: shape}``."""
    sizes = {}
    for item in items:
        kind, sep, shape = item.partition("=")
        if not sep or kind not in KINDS:
            raise SystemExit(f"--sizes: expected KIND=AxB with KIND one of {', '.join(KINDS)} (got {item!r})")
        try:
            dims = tuple(int(d) for d in shape.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--sizes: {item!r}: the shape must be integers joined by x, e.g. 4096x1000") from None
        if len(dims) != len(SIZES[kind]) or min(dims) < 1:
            raise SystemExit(f"--sizes: kind {kind} takes {len(SIZES[kind])} positive numbers, e.g. "
                             f"{'x'.join(map(str, SIZES[kind]))} (got {item!r})")  # fmt: skip
        sizes[kind] = dims
    return sizes


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(prog="python -m bench.losses", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--sizes", nargs="*", default=[], metavar="KIND=AxB", help="shape per kind, e.g. classification=1024x100")
    parser.add_argument("--toy", action="store_true", help="tiny sizes for every kind (a smoke test, not a measurement)")
    parser.add_argument("--losses", nargs="*", default=None, help="only these losses")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this machine has no CUDA GPU")
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = [n for n in args.losses or [] if n not in losses.available()]
    if unknown:
        raise SystemExit(f"--losses: not registered: {', '.join(unknown)}; registered: {', '.join(losses.available())}")
    sizes = {**(TOY_SIZES if args.toy else {}), **parse_sizes(args.sizes)}
    report = run(args.losses, sizes, args.device, args.repeats, args.warmup)
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or platform.machine()
    print(
        f"forward + backward, float32, median of {args.repeats} after {args.warmup} warm-up rounds; "
        f"device {args.device} ({device}, {torch.get_num_threads()} threads); torch {torch.__version__}\n"
    )
    print(report.table())
    return report


if __name__ == "__main__":
    main()
