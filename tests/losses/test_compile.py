"""Every loss traces into one graph under torch.compile: no Python branch on tensor values, no host read."""

from __future__ import annotations

import pytest
import torch

import losses
from bench.references import REFERENCES, TOY_SIZES


@pytest.mark.parametrize("name", losses.available())
def test_loss_compiles_without_graph_breaks(name):
    ref = REFERENCES[name][0]
    size = TOY_SIZES[losses.kind_of(name)]
    loss = losses.build(name, **ref.hparams_for(size))
    inputs = ref.make_inputs(size, torch.device("cpu"))
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(loss)(*inputs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(*inputs), loss(*inputs))
