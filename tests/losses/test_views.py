"""Two-view losses: closed-form values, invariances, input guards, and the cross-rank gather under DDP."""

from __future__ import annotations

import math
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import losses
from losses import ConfigError

VIEW_LOSSES = ["nt_xent", "info_nce"]


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_of_orthogonal_items_with_identical_views_has_a_closed_form(temperature):
    n = 4
    z = torch.eye(n, dtype=torch.float64)  # positives: similarity 1; every negative: similarity 0
    value = losses.build("nt_xent", temperature=temperature)(z, z.clone())
    expected = -math.log(math.exp(1 / temperature) / (math.exp(1 / temperature) + 2 * n - 2))
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_info_nce_of_orthogonal_items_with_identical_views_has_a_closed_form():
    n, t = 5, 0.2
    z = torch.eye(n, dtype=torch.float64)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + n - 1))  # no self-pair to mask: N keys
    assert losses.build("info_nce", temperature=t)(z, z.clone()).item() == pytest.approx(expected, rel=1e-12)


def test_nt_xent_is_symmetric_in_the_two_views_and_info_nce_is_not():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    nt_xent, info_nce = losses.build("nt_xent"), losses.build("info_nce")
    torch.testing.assert_close(nt_xent(z1, z2), nt_xent(z2, z1))
    assert not torch.allclose(info_nce(z1, z2), info_nce(z2, z1))


def test_nt_xent_none_reduction_gives_one_value_per_anchor_of_both_views():
    values = losses.build("nt_xent", reduction="none")(torch.randn(5, 3), torch.randn(5, 3))
    assert values.shape == (10,)
    assert losses.build("info_nce", reduction="none")(torch.randn(5, 3), torch.randn(5, 3)).shape == (5,)


@pytest.mark.parametrize("name", VIEW_LOSSES)
def test_view_losses_only_see_directions(name):
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    loss = losses.build(name)
    torch.testing.assert_close(loss(z1, z2), loss(7 * z1, 0.1 * z2))


@pytest.mark.parametrize("name", VIEW_LOSSES)
def test_gather_is_a_no_op_in_a_single_process(name):
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    loss = losses.build(name)
    torch.testing.assert_close(loss(z1, z2, gather=True), loss(z1, z2))


@pytest.mark.parametrize("name", VIEW_LOSSES)
@pytest.mark.parametrize("temperature", [0.0, -0.5, float("nan")])
def test_temperature_must_be_positive(name, temperature):
    with pytest.raises(ConfigError, match=rf"loss '{name}': temperature must be"):
        losses.build(name, temperature=temperature)


@pytest.mark.parametrize("name", VIEW_LOSSES)
@pytest.mark.parametrize(
    "z1,z2,message",
    [
        (torch.randn(4, 3), torch.randn(5, 3), r"z2 must be of the same shape as z1 \(4, 3\)"),
        (torch.randn(4, 3), torch.randn(4, 2), r"z2 must be of the same shape as z1 \(4, 3\)"),
        (torch.randn(4), torch.randn(4), r"z1 must be embeddings of shape \[N, D\]"),
        (torch.randn(1, 3), torch.randn(1, 3), r"z1 must be a batch of at least 2 images"),
        (torch.ones(4, 3, dtype=torch.long), torch.randn(4, 3), r"z1 must be a floating-point tensor"),
    ],
)
def test_bad_views_are_clear_errors(name, z1, z2, message):
    with pytest.raises(ValueError, match=rf"loss '{name}': {message}"):
        losses.build(name)(z1, z2)


# ----- distributed: 2 gloo processes on CPU against one process on the whole batch ------------------
D_IN, D_OUT = 6, 4
# (loss, rows per rank, reduction): unequal rows are exact for `sum`, equal rows for DDP's mean
DDP_CASES = [
    ("nt_xent", (4, 4), "mean"),
    ("info_nce", (4, 4), "mean"),
    ("nt_xent", (5, 3), "sum"),
    ("info_nce", (5, 3), "sum"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_inputs(rows: int) -> tuple[torch.Tensor, torch.Tensor, nn.Linear]:
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(rows, D_IN, generator=g, dtype=torch.float64)
    x2 = x1 + 0.5 * torch.randn(rows, D_IN, generator=g, dtype=torch.float64)
    torch.manual_seed(1)
    return x1, x2, nn.Linear(D_IN, D_OUT).double()


def ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    """One rank: wrap the shared encoder in DDP, compute the loss on this rank's rows, back-propagate."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        results = []
        for name, counts, reduction in DDP_CASES:
            x1, x2, encoder = ddp_inputs(sum(counts))
            model = nn.parallel.DistributedDataParallel(encoder)
            rows = slice(sum(counts[:rank]), sum(counts[: rank + 1]))
            loss = losses.build(name, reduction=reduction)
            value = loss(model(x1[rows]), model(x2[rows]), gather=True)
            value.backward()  # DDP averages the weight gradients over the ranks
            local = loss(encoder(x1[rows]), encoder(x2[rows]), gather=False)
            results.append((value.detach(), encoder.weight.grad.clone(), local.detach()))
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(ddp_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("case", range(len(DDP_CASES)), ids=[f"{n}-{c[0]}+{c[1]}-{r}" for n, c, r in DDP_CASES])
def test_two_gloo_ranks_gathering_equal_one_process_on_the_whole_batch(ddp_results, case):
    name, counts, reduction = DDP_CASES[case]
    x1, x2, encoder = ddp_inputs(sum(counts))
    full = losses.build(name, reduction=reduction)(encoder(x1), encoder(x2))
    full.backward()
    (v0, g0, local0), (v1, g1, local1) = ddp_results[0][case], ddp_results[1][case]
    combine = (lambda a, b: (a + b) / 2) if reduction == "mean" else (lambda a, b: a + b)
    torch.testing.assert_close(combine(v0, v1), full.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g0, g1)  # DDP left every rank with the same gradient
    grad = g0 if reduction == "mean" else 2 * g0  # undo DDP's averaging for a summed loss
    torch.testing.assert_close(grad, encoder.weight.grad, rtol=1e-10, atol=1e-10)
    # without the gather each rank only sees its own negatives, which is a different loss
    assert not torch.allclose(combine(local0, local1), full.detach())
