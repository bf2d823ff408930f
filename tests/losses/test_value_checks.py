"""Value checks (they read tensors back to the host) run on a loss's first calls only, or on every call in debug."""

from __future__ import annotations

import math

import pytest
import torch

import losses
from bench.references import REFERENCES, TOY_SIZES
from losses.base import VALUE_CHECK_CALLS, VALUE_CHECKS_ENV

# what reads a tensor back to the host from Python: each is counted while a loss runs
HOST_READS = ("__bool__", "__float__", "__int__", "__index__", "item", "tolist")


@pytest.fixture
def host_reads(monkeypatch) -> list[str]:
    """The names of the host reads made while the test runs (from now on)."""
    reads: list[str] = []
    for attr in HOST_READS:
        original = getattr(torch.Tensor, attr)

        def counted(self, *args, _original=original, _attr=attr, **kwargs):
            reads.append(_attr)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, attr, counted)
    return reads


def toy_case(name: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    ref = REFERENCES[name][0]
    size = TOY_SIZES[losses.kind_of(name)]
    return losses.build(name, **ref.hparams_for(size)), ref.make_inputs(size, torch.device("cpu"))


@pytest.mark.parametrize("name", losses.available())
def test_after_the_first_calls_a_loss_reads_nothing_back_to_the_host(name, host_reads):
    loss, inputs = toy_case(name)
    for _ in range(VALUE_CHECK_CALLS):
        loss(*inputs)
    checked = len(host_reads)
    loss(*inputs)
    assert host_reads[checked:] == [], f"{name} syncs with the host after its first {VALUE_CHECK_CALLS} calls"


def test_the_first_calls_check_values_and_the_later_ones_do_not(host_reads):
    loss = losses.build("ce")
    logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    counts = []
    for _ in range(VALUE_CHECK_CALLS + 2):
        before = len(host_reads)
        loss(logits, target)
        counts.append(len(host_reads) - before)
    assert all(c > 0 for c in counts[:VALUE_CHECK_CALLS]) and counts[VALUE_CHECK_CALLS:] == [0, 0]


def test_a_bad_target_is_caught_on_the_first_call():
    with pytest.raises(ValueError, match="class indices in \\[0, 2\\]"):
        losses.build("ce")(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="counts >= 0"):
        losses.build("poisson_nll")(torch.randn(4), torch.tensor([1.0, -1.0, 0.0, 2.0]))


def test_debug_setting_checks_every_call(monkeypatch):
    monkeypatch.setenv(VALUE_CHECKS_ENV, "always")
    loss = losses.build("ce")
    assert loss.value_check_calls == math.inf
    for _ in range(3 * VALUE_CHECK_CALLS):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="class indices"):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))


def test_without_the_debug_setting_later_calls_skip_the_checks():
    """The trade-off: a bad batch after the first calls is not looked at (torch's own kernel may still refuse it)."""
    loss = losses.build("poisson_nll")
    for _ in range(VALUE_CHECK_CALLS):
        loss(torch.randn(4), torch.tensor([1.0, 0.0, 0.0, 2.0]))
    assert torch.isfinite(loss(torch.randn(4), torch.tensor([1.0, -1.0, 0.0, 2.0])))


@pytest.mark.parametrize("setting,calls", [("3", 3), ("0", 0), ("", VALUE_CHECK_CALLS)])
def test_the_setting_is_a_number_of_calls(setting, calls, monkeypatch):
    monkeypatch.setenv(VALUE_CHECKS_ENV, setting)
    assert losses.build("mse").value_check_calls == calls


def test_a_bad_setting_is_refused(monkeypatch):
    monkeypatch.setenv(VALUE_CHECKS_ENV, "sometimes")
    with pytest.raises(ValueError, match="a number of calls or 'always'"):
        losses.build("mse")
