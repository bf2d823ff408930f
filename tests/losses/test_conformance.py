"""Every registered loss against its reference, by gradcheck, and under bf16 autocast."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import torch

import losses
import tests.losses as cases_package
from tests.losses.conformance import Case


def collect_cases() -> dict[str, list[Case]]:
    """Merge ``CASES`` from every ``tests/losses/cases_*.py``."""
    found: dict[str, list[Case]] = {}
    for info in pkgutil.iter_modules(cases_package.__path__):
        if info.name.startswith("cases_"):
            module = importlib.import_module(f"tests.losses.{info.name}")
            for name, cases in module.CASES.items():
                found.setdefault(name, []).extend(cases)
    return found


ALL_CASES = collect_cases()
PARAMS = [pytest.param(name, case, id=case.id(name)) for name, cases in sorted(ALL_CASES.items()) for case in cases]
REDUCTION_PARAMS = [
    pytest.param(name, case, reduction, id=f"{case.id(name)}-{reduction}")
    for name, cases in sorted(ALL_CASES.items())
    for case in cases
    for reduction in case.reductions
]


@pytest.mark.parametrize("name", losses.available())
def test_every_registered_loss_has_reference_cases(name):
    assert ALL_CASES.get(name), f"loss {name!r} has no Case in tests/losses/cases_*.py"


@pytest.mark.parametrize("name", sorted(ALL_CASES))
def test_every_case_names_a_registered_loss(name):
    assert name in losses.available()


@pytest.mark.parametrize("name,case,reduction", REDUCTION_PARAMS)
def test_equals_reference_in_float64(name, case, reduction):
    inputs = case.make_inputs(torch.Generator().manual_seed(0), torch.float64)
    loss = losses.build(name, **case.hparams, reduction=reduction)
    expected = case.reference(*inputs, reduction=reduction, **case.hparams)
    torch.testing.assert_close(loss(*inputs), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,case", PARAMS)
def test_gradcheck_in_float64(name, case):
    if not case.gradcheck:
        pytest.skip(f"{name}: the gradient is not the value's derivative by design; see tests/losses/test_<family>.py")
    inputs = list(case.make_inputs(torch.Generator().manual_seed(1), torch.float64))
    loss = losses.build(name, **case.hparams)
    for i in case.grad_inputs:
        inputs[i] = inputs[i].detach().requires_grad_(True)

    def f(*grad_values):
        args = list(inputs)
        for i, value in zip(case.grad_inputs, grad_values):
            args[i] = value
        return loss(*args)

    assert torch.autograd.gradcheck(f, tuple(inputs[i] for i in case.grad_inputs))


@pytest.mark.parametrize("name,case", PARAMS)
def test_bf16_autocast_is_finite_float32_and_close(name, case):
    inputs = case.make_inputs(torch.Generator().manual_seed(2), torch.float32)
    loss = losses.build(name, **case.hparams)
    exact = loss(*inputs)
    low_inputs = [x.bfloat16() if x.is_floating_point() and i in case.grad_inputs else x for i, x in enumerate(inputs)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss(*low_inputs)
    assert low.dtype == torch.float32, "losses compute in float32 under autocast"
    assert torch.isfinite(low).all()
    rtol, atol = case.autocast_tolerance
    torch.testing.assert_close(low, exact, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", losses.available())
def test_every_loss_has_a_config_that_builds(make_config, name):
    from recipes.run.checks import build_loss

    cfg = make_config(f"loss={name}")
    assert cfg.loss.name == name
    assert build_loss("loss", cfg.loss).name == name
