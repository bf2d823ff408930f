"""``python -m bench.losses`` runs at toy size on CPU; its references agree with the losses (no timing asserted)."""

from __future__ import annotations

import pytest
import torch

import losses
from bench import losses as bench
from bench.references import BY_KIND, REFERENCES, TOY_SIZES, Reference
from losses.base import Loss
from losses.registry import _REGISTRY, LossSpec


@pytest.fixture(scope="module")
def toy_report():
    return bench.run(sizes=TOY_SIZES, repeats=1, warmup=0)


def test_every_registered_loss_with_an_entry_is_timed_and_agrees_with_its_reference(toy_report):
    assert not toy_report.failed, toy_report.failed
    measured = {(r.name, r.label) for r in toy_report.rows}
    for name in losses.available():
        for ref in REFERENCES.get(name, []):
            assert (name, ref.label) in measured
    for row in toy_report.rows:
        assert row.ours_ms > 0 and row.reference_ms > 0 and row.ratio > 0
        where = f"{row.name} ({row.label}): fix the loss or its entry in bench/references/__init__.py"
        assert row.value_diff < 1e-5, where
        assert row.grad_diff < 1e-4, where


def test_losses_without_an_entry_are_listed_as_skipped(toy_report, monkeypatch):
    assert set(toy_report.skipped) == {n for n in losses.available() if n not in REFERENCES}

    class Unlisted(Loss):
        name, kind = "zz_unlisted", "regression"

        def forward(self, pred, target):
            return self.reduce((pred - target).abs())

    monkeypatch.setitem(_REGISTRY, "zz_unlisted", LossSpec("zz_unlisted", "regression", Unlisted))
    report = bench.run(sizes=TOY_SIZES, repeats=1, warmup=0, names=["zz_unlisted", "ce"])
    assert report.skipped == ["zz_unlisted"] and [r.name for r in report.rows] == ["ce"]
    assert "skipped (no entry in bench/references/__init__.py): zz_unlisted" in report.table()


@pytest.mark.parametrize(
    "kind,name,ref",
    [
        pytest.param(kind, name, ref, id=f"{name}-{ref.label}" if ref.label else name)
        for kind, group in BY_KIND.items()
        for name, refs in group.items()
        for ref in refs
    ],
)
def test_every_reference_entry_runs_even_before_its_loss_is_registered(kind, name, ref):
    if name in losses.available():
        assert losses.kind_of(name) == kind, f"bench/references/__init__.py files {name!r} under the wrong kind"
    size = TOY_SIZES[kind]
    inputs = [
        x.requires_grad_(True) if i in ref.grad_inputs else x for i, x in enumerate(ref.make_inputs(size, torch.device("cpu")))
    ]
    value = ref.value(*inputs, **ref.hparams_for(size))
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value)
    assert all(torch.isfinite(inputs[i].grad).all() for i in ref.grad_inputs)


def test_a_broken_entry_is_reported_and_the_others_still_run(monkeypatch):
    def broken(*_, **__):
        raise RuntimeError("shape mismatch")

    monkeypatch.setitem(REFERENCES, "ce", [Reference(REFERENCES["ce"][0].make_inputs, broken, "torch")])
    report = bench.run(names=["ce", "bce_logits"], sizes=TOY_SIZES, repeats=1, warmup=0)
    assert report.failed == {"ce": "RuntimeError: shape mismatch"}
    assert [r.name for r in report.rows] == ["bce_logits"]


def test_command_line_prints_the_table(capsys):
    report = bench.main(["--toy", "--repeats", "1", "--warmup", "0", "--losses", "ce", "hinge", "--sizes", "classification=6x3"])
    out = capsys.readouterr().out
    assert "| loss | kind | size | ours ms | reference ms | ratio |" in out
    assert "| ce | classification | 6x3 |" in out and "| hinge (multiclass) | classification | 6x3 |" in out
    assert {r.size for r in report.rows} == {(6, 3)}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--sizes", "classification=4096"], "takes 2 positive numbers"),
        (["--sizes", "nonsense=3"], "KIND one of"),
        (["--sizes", "regression=abc"], "integers joined by x"),
        (["--losses", "nope"], "not registered: nope"),
    ],
)
def test_bad_command_lines_are_refused_with_a_message(argv, message):
    with pytest.raises(SystemExit, match=message):
        bench.main(argv)


def test_parse_sizes_reads_shapes_per_kind():
    assert bench.parse_sizes(["classification=128x10", "masks=2x3x8x8"]) == {"classification": (128, 10), "masks": (2, 3, 8, 8)}
