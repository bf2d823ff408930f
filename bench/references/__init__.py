"""Every loss's references, and what ``bench/losses.py`` times each loss against.

The references live here once, one module per loss family (``bench/references/<family>.py``, like
``losses/<family>.py``): each is ``fn(*inputs, reduction=..., **hparams)`` and computes what the loss
must return with torch / torchvision, or with the formula written out where torch has no such loss.
``tests/losses/cases_<family>.py`` checks every loss against them at small sizes in float64; this
module's table runs them at realistic sizes.

A ``Reference`` makes the loss's ``forward`` inputs at a size (one shape tuple per kind, ``SIZES``) on
a device, names the hyperparameters our loss is built with, and computes the same value (mean-reduced
unless the hyperparameters say otherwise). The benchmark also checks that both agree, so an entry
doubles as a float32 check at scale.

Entries are written from the specification of each loss (issue 3); an entry for a loss that is not
registered is simply not run. Losses without an entry are listed as skipped: add one here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from bench.references import boxes, classification, distribution, elbo, masks, pairs, regression, views

Size = tuple[int, ...]

# realistic sizes per kind: batch x classes, elements, batch x data dim x latent dim, batch x embedding dim,
# boxes, batch x classes x height x width
SIZES: dict[str, Size] = {
    "classification": (4096, 1000),
    "regression": (1_048_576,),
    "distribution": (4096, 1000),
    "elbo": (512, 784, 32),
    "pair": (4096, 128),
    "triplet": (4096, 128),
    "views": (1024, 128),
    "boxes": (65536,),
    "masks": (16, 4, 128, 128),
}
TOY_SIZES: dict[str, Size] = {
    "classification": (16, 5),
    "regression": (32,),
    "distribution": (8, 5),
    "elbo": (4, 12, 3),
    "pair": (8, 4),
    "triplet": (8, 4),
    "views": (8, 4),
    "boxes": (8,),
    "masks": (2, 3, 4, 4),
}


@dataclass(frozen=True)
class Reference:
    """One benchmarked configuration of a loss and the independent implementation it is timed against.

    ``make_inputs(size, device)`` returns ``forward``'s arguments (seeded); ``fn`` is one of the family
    references, ``fn(*inputs, reduction=..., **hparams)``; ``hparams`` (a dict, or a function of the size)
    build our loss; ``grad_inputs`` are the positions differentiated in the backward pass.
    """

    make_inputs: Callable[[Size, torch.device], tuple[Tensor, ...]]
    fn: Callable[..., Tensor]
    source: str
    hparams: dict[str, Any] | Callable[[Size], dict[str, Any]] = field(default_factory=dict)
    grad_inputs: tuple[int, ...] = (0,)
    label: str = ""

    def hparams_for(self, size: Size) -> dict[str, Any]:
        return self.hparams(size) if callable(self.hparams) else dict(self.hparams)

    def value(self, *inputs: Tensor, **hparams: Any) -> Tensor:
        """The reference value, reduced as our loss is built with ``hparams`` (mean unless they name a reduction)."""
        return self.fn(*inputs, **{"reduction": "mean", **hparams})


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _on(device: torch.device, *tensors: Tensor) -> tuple[Tensor, ...]:
    return tuple(t.to(device) for t in tensors)


# ----- inputs ---------------------------------------------------------------------------------------


def logits_indices(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    n, c = size
    g = _gen()
    return _on(device, torch.randn(n, c, generator=g) * 2, torch.randint(0, c, (n,), generator=g))


def logits_multi_hot(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    n, c = size
    g = _gen()
    return _on(device, torch.randn(n, c, generator=g) * 2, (torch.rand(n, c, generator=g) > 0.9).float())


def scores_signs(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    n = math.prod(size)
    g = _gen()
    return _on(device, torch.randn(n, generator=g) * 2, torch.randint(0, 2, (n,), generator=g).float() * 2 - 1)


def pred_target(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    g = _gen()
    return _on(device, torch.randn(*size, generator=g), torch.randn(*size, generator=g))


def positive_pred_target(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    g = _gen()
    return _on(device, torch.rand(*size, generator=g) * 10, torch.rand(*size, generator=g) * 10)


def log_rate_counts(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    g = _gen()
    log_rate = torch.randn(*size, generator=g)
    return _on(device, log_rate, torch.poisson(log_rate.exp(), generator=g))


def mean_target_var(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    g = _gen()
    return _on(device, torch.randn(*size, generator=g), torch.randn(*size, generator=g), torch.rand(*size, generator=g) + 0.1)


def log_probs_probs(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    n, c = size
    g = _gen()
    return _on(device, torch.randn(n, c, generator=g).log_softmax(1), torch.randn(n, c, generator=g).softmax(1))


def vae_outputs(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    n, d, z = size
    g = _gen()
    return _on(
        device,
        torch.randn(n, d, generator=g),
        (torch.rand(n, d, generator=g) > 0.8).float(),
        torch.randn(n, z, generator=g),
        torch.randn(n, z, generator=g) * 0.3,
    )


def embedding_pairs(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    n, d = size
    g = _gen()
    scale = 1 / math.sqrt(d)  # distances of order 1, so margins of order 1 are active
    return _on(
        device,
        torch.randn(n, d, generator=g) * scale,
        torch.randn(n, d, generator=g) * scale,
        torch.randint(0, 2, (n,), generator=g).float() * 2 - 1,
    )


def embedding_triplets(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    n, d = size
    g = _gen()
    return _on(device, *(torch.randn(n, d, generator=g) / math.sqrt(d) for _ in range(3)))


def two_views(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    n, d = size
    g = _gen()
    z1 = torch.randn(n, d, generator=g)
    return _on(device, z1, z1 + 0.5 * torch.randn(n, d, generator=g))


def box_pairs(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    (n,) = size
    g = _gen()

    def boxes() -> Tensor:
        xy = torch.rand(n, 2, generator=g) * 100
        return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 50 + 1], dim=1)

    target = boxes()
    pred = target + torch.randn(n, 4, generator=g) * 5
    pred = torch.cat([pred[:, :2], torch.maximum(pred[:, 2:], pred[:, :2] + 0.5)], dim=1)  # keep x2 > x1, y2 > y1
    return _on(device, pred, target)


def mask_logits_indices(size: Size, device: torch.device) -> tuple[Tensor, ...]:
    n, c, h, w = size
    g = _gen()
    return _on(device, torch.randn(n, c, h, w, generator=g) * 2, torch.randint(0, c, (n, h, w), generator=g))


def long_tail_counts(size: Size) -> dict[str, Any]:
    """class_balanced on a long tail: class c has ``1000 * 0.99^c + 1`` samples."""
    return {"beta": 0.999, "samples_per_class": [int(1000 * 0.99**c) + 1 for c in range(size[1])]}


BY_KIND: dict[str, dict[str, list[Reference]]] = {
    "classification": {
        "ce": [Reference(logits_indices, classification.torch_ce, "torch")],
        "label_smoothing": [Reference(logits_indices, classification.torch_ce, "torch", {"label_smoothing": 0.1})],
        "focal": [
            Reference(
                logits_indices, classification.hand_softmax_focal, "formula", {"gamma": 2.0, "alpha": 0.25}, label="softmax"
            ),
            Reference(
                logits_multi_hot, classification.torchvision_focal, "torchvision", {"gamma": 2.0, "alpha": 0.25}, label="sigmoid"
            ),
        ],
        "bce_logits": [Reference(logits_multi_hot, classification.torch_bce, "torch")],
        "class_balanced": [Reference(logits_indices, classification.hand_class_balanced, "formula", long_tail_counts)],
        "hinge": [
            Reference(logits_indices, classification.hand_multi_margin, "formula", label="multiclass"),
            Reference(scores_signs, classification.hand_binary_hinge, "formula", label="binary"),
        ],
    },
    "regression": {
        "mse": [Reference(pred_target, regression.torch_mse, "torch")],
        "mae": [Reference(pred_target, regression.torch_l1, "torch")],
        "huber": [Reference(pred_target, regression.torch_huber, "torch", {"delta": 1.0})],
        "smooth_l1": [Reference(pred_target, regression.torch_smooth_l1, "torch", {"beta": 1.0})],
        "log_cosh": [Reference(pred_target, regression.hand_log_cosh, "formula")],
        "quantile": [Reference(pred_target, regression.hand_pinball, "formula", {"tau": 0.9})],
        "mape": [Reference(positive_pred_target, regression.hand_mape, "formula", {"eps": 1e-8})],
        "msle": [Reference(positive_pred_target, regression.hand_msle, "formula")],
        "poisson_nll": [Reference(log_rate_counts, regression.torch_poisson, "torch", {"log_input": True, "full": False})],
        "gaussian_nll": [
            Reference(mean_target_var, regression.torch_gaussian, "torch", {"full": False, "eps": 1e-6}, grad_inputs=(0, 2))
        ],
    },
    "distribution": {
        # torch's KLDivLoss semantics (input log-probabilities, target probabilities)
        "kl_div": [Reference(log_probs_probs, distribution.torch_kl, "torch", {"reduction": "batchmean", "log_target": False})],
        "js_div": [Reference(log_probs_probs, distribution.torch_js, "torch kl_div", {"reduction": "batchmean"})],
    },
    "elbo": {
        "elbo": [
            Reference(
                vae_outputs, elbo.reference_elbo, "formula", {"beta": 1.0, "reconstruction": "bernoulli"}, grad_inputs=(0, 2, 3)
            )
        ],
    },
    "pair": {
        "hinge_embedding": [
            Reference(embedding_pairs, pairs.torch_hinge_embedding, "torch", {"margin": 1.0}, grad_inputs=(0, 1))
        ],
        "cosine_embedding": [
            Reference(embedding_pairs, pairs.torch_cosine_embedding, "torch", {"margin": 0.0}, grad_inputs=(0, 1))
        ],
        "contrastive": [Reference(embedding_pairs, pairs.hadsell_contrastive, "formula", {"margin": 1.0}, grad_inputs=(0, 1))],
    },
    "triplet": {
        "triplet": [
            Reference(
                embedding_triplets, pairs.torch_triplet, "torch", {"margin": 1.0, "p": 2, "swap": False}, grad_inputs=(0, 1, 2)
            )
        ],
        "margin_ranking": [
            Reference(embedding_triplets, pairs.torch_margin_ranking, "torch", {"margin": 0.1}, grad_inputs=(0, 1, 2))
        ],
    },
    "views": {
        "nt_xent": [Reference(two_views, views.nt_xent_matrix, "formula", {"temperature": 0.5}, grad_inputs=(0, 1))],
        "info_nce": [Reference(two_views, views.torch_info_nce, "torch ce", {"temperature": 0.1}, grad_inputs=(0, 1))],
    },
    "boxes": {
        "l1": [Reference(box_pairs, boxes.l1_reference, "torch l1_loss")],
        "iou": [Reference(box_pairs, boxes.iou_reference, "formula", {"eps": 1e-7})],
        "giou": [Reference(box_pairs, boxes.torchvision_giou, "torchvision", {"eps": 1e-7})],
        "diou": [Reference(box_pairs, boxes.torchvision_diou, "torchvision", {"eps": 1e-7})],
        "ciou": [Reference(box_pairs, boxes.torchvision_ciou, "torchvision", {"eps": 1e-7})],
    },
    "masks": {
        "dice": [Reference(mask_logits_indices, masks.batched_dice, "formula", {"smooth": 1.0})],
        "jaccard": [Reference(mask_logits_indices, masks.batched_jaccard, "formula", {"smooth": 1.0})],
        "tversky": [Reference(mask_logits_indices, masks.batched_tversky, "formula", {"alpha": 0.3, "beta": 0.7})],
    },
}
REFERENCES: dict[str, list[Reference]] = {name: refs for group in BY_KIND.values() for name, refs in group.items()}
