"""Pair and triplet losses: their defining properties and the pitfalls they guard against."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import losses
from losses import ConfigError

PAIR_LOSSES = ["hinge_embedding", "cosine_embedding", "contrastive"]
TRIPLET_LOSSES = ["triplet", "margin_ranking"]


def test_contrastive_is_half_squared_distance_for_similar_pairs_and_zero_beyond_the_margin():
    emb1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    emb2 = torch.tensor([[3.0, 4.0], [0.6, 0.8], [3.0, 4.0]], dtype=torch.float64)  # distances 5, 1, 5
    y = torch.tensor([1, -1, -1])
    values = losses.build("contrastive", margin=2.0, reduction="none")(emb1, emb2, y)
    torch.testing.assert_close(values, torch.tensor([12.5, 0.5, 0.0], dtype=torch.float64))


def test_hinge_embedding_pulls_similar_pairs_by_their_distance_and_pushes_dissimilar_ones_to_the_margin():
    emb1 = torch.zeros(3, 2, dtype=torch.float64)
    emb2 = torch.tensor([[3.0, 4.0], [0.6, 0.8], [3.0, 4.0]], dtype=torch.float64)
    values = losses.build("hinge_embedding", margin=2.0, reduction="none")(emb1, emb2, torch.tensor([1, -1, -1]))
    torch.testing.assert_close(values, torch.tensor([5.0, 1.0, 0.0], dtype=torch.float64))


def test_cosine_embedding_ignores_the_length_of_the_embeddings():
    g = torch.Generator().manual_seed(0)
    emb1, emb2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    y = torch.tensor([1, -1, 1, -1, 1, -1])
    loss = losses.build("cosine_embedding", margin=0.1)
    torch.testing.assert_close(loss(emb1, emb2, y), loss(5 * emb1, 0.2 * emb2, y))


@pytest.mark.parametrize("name", PAIR_LOSSES)
def test_identical_embeddings_give_finite_gradients(name):
    emb = torch.randn(4, 3)
    emb1, emb2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    value = losses.build(name)(emb1, emb2, torch.tensor([1, -1, 1, -1]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(emb1.grad).all() and torch.isfinite(emb2.grad).all()


@pytest.mark.parametrize("name", PAIR_LOSSES)
@pytest.mark.parametrize("labels", [[0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0], [True, False, True, False], [2, -1, 1, 1]])
def test_labels_outside_plus_minus_one_are_refused(name, labels):
    # torch's HingeEmbeddingLoss and CosineEmbeddingLoss silently give 0/1 labels a meaning of their own
    with pytest.raises(ValueError, match=rf"loss '{name}': y must be \+1 \(similar\) or -1 \(dissimilar\)"):
        losses.build(name)(torch.randn(4, 3), torch.randn(4, 3), torch.tensor(labels))


def test_zero_one_labels_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"y = 2 \* label - 1"):
        losses.build("contrastive")(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 1]))


@pytest.mark.parametrize("name", PAIR_LOSSES)
def test_float_plus_minus_one_labels_are_accepted(name):
    emb1, emb2 = torch.randn(4, 3), torch.randn(4, 3)
    loss = losses.build(name)
    as_floats, as_ints = torch.tensor([1.0, -1.0, 1.0, -1.0]), torch.tensor([1, -1, 1, -1])
    torch.testing.assert_close(loss(emb1, emb2, as_floats), loss(emb1, emb2, as_ints))


@pytest.mark.parametrize(
    "emb1,emb2,y,message",
    [
        (torch.randn(4, 3), torch.randn(4, 2), torch.ones(4), r"emb2 must be of the same shape as emb1 \(4, 3\) \(got"),
        (torch.randn(3), torch.randn(3), torch.ones(3), r"emb1 must be embeddings of shape \[N, D\]"),
        (torch.randn(4, 3), torch.randn(4, 3), torch.ones(5), r"y must be a tensor of shape \(4,\)"),
        (torch.ones(4, 3, dtype=torch.long), torch.randn(4, 3), torch.ones(4), "emb1 must be a floating-point tensor"),
    ],
)
def test_pair_shape_and_dtype_mismatches_are_clear_errors(emb1, emb2, y, message):
    with pytest.raises(ValueError, match=message):
        losses.build("contrastive")(emb1, emb2, y)


@pytest.mark.parametrize("name", TRIPLET_LOSSES)
def test_triplet_shape_mismatch_is_a_clear_error(name):
    with pytest.raises(ValueError, match=rf"loss '{name}': negative must be of the same shape as anchor"):
        losses.build(name)(torch.randn(4, 3), torch.randn(4, 3), torch.randn(3, 3))


def test_triplet_is_zero_once_the_negative_is_a_margin_further_than_the_positive():
    anchor = torch.zeros(2, 2, dtype=torch.float64)
    positive = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    negative = torch.tensor([[2.5, 0.0], [1.5, 0.0]], dtype=torch.float64)  # 1.5 and 0.5 further than the positive
    loss = losses.build("triplet", margin=1.0, reduction="none")
    torch.testing.assert_close(loss(anchor, positive, negative), torch.tensor([0.0, 0.5], dtype=torch.float64), atol=1e-5, rtol=0)
    assert loss.terms["active"].item() == 0.5


def test_margin_ranking_wants_the_positive_more_similar_by_the_margin():
    anchor = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    positive = torch.tensor([[2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)  # cos 1 and 0
    negative = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)  # cos 0 and 1
    values = losses.build("margin_ranking", margin=0.5, reduction="none")(anchor, positive, negative)
    torch.testing.assert_close(values, torch.tensor([0.0, 1.5], dtype=torch.float64))


@pytest.mark.parametrize(
    "name,kind,score",
    [
        ("hinge_embedding", "euclidean", lambda a, b: (a - b).norm(dim=1)),
        ("contrastive", "euclidean", lambda a, b: (a - b).norm(dim=1)),
        ("cosine_embedding", "cosine", lambda a, b: 1 - F.cosine_similarity(a, b)),
        ("triplet", "euclidean", lambda a, b: F.pairwise_distance(a, b)),
        ("margin_ranking", "cosine", lambda a, b: 1 - F.cosine_similarity(a, b)),
    ],
)
def test_each_loss_names_and_computes_the_distance_it_shapes(name, kind, score):
    a, b = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    loss = losses.build(name)
    assert loss.distance_name == kind
    torch.testing.assert_close(loss.distance(a, b), score(a, b))


@pytest.mark.parametrize(
    "name,hparams,message",
    [
        ("hinge_embedding", {"margin": -1.0}, "loss 'hinge_embedding': margin must be > 0 (got -1.0)"),
        ("hinge_embedding", {"margin": 0.0}, "loss 'hinge_embedding': margin must be > 0 (got 0.0)"),
        ("contrastive", {"margin": -0.5}, "loss 'contrastive': margin must be > 0 (got -0.5)"),
        ("cosine_embedding", {"margin": 1.5}, "loss 'cosine_embedding': margin must be <= 1 (got 1.5)"),
        ("cosine_embedding", {"margin": -2.0}, "loss 'cosine_embedding': margin must be >= -1 (got -2.0)"),
        ("triplet", {"margin": -0.1}, "loss 'triplet': margin must be >= 0 (got -0.1)"),
        ("triplet", {"p": 0.5}, "loss 'triplet': p must be >= 1 (got 0.5)"),
        ("triplet", {"swap": "yes"}, "loss 'triplet': swap must be true or false (got 'yes')"),
        ("margin_ranking", {"margin": -0.2}, "loss 'margin_ranking': margin must be >= 0 (got -0.2)"),
        ("margin_ranking", {"margin": 3.0}, "loss 'margin_ranking': margin must be <= 2 (got 3.0)"),
        ("contrastive", {"reduction": "batchmean"}, "loss 'contrastive': reduction must be one of none, mean, sum"),
    ],
)
def test_bad_hyperparameters_are_refused(name, hparams, message):
    with pytest.raises(ConfigError) as err:
        losses.build(name, **hparams)
    assert message in str(err.value)


@pytest.mark.parametrize("name", PAIR_LOSSES + TRIPLET_LOSSES)
def test_pair_and_triplet_losses_have_the_kinds_their_forward_takes(name):
    assert losses.kind_of(name) == ("pair" if name in PAIR_LOSSES else "triplet")
