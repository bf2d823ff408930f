"""What ``bench/losses.py`` times each loss against: loss name -> inputs, hyperparameters, reference.

A ``Reference`` makes the loss's ``forward`` inputs at a size (one shape tuple per kind, ``SIZES``) on
a device, names the hyperparameters our loss is built with, and computes the same mean-reduced value
with torch / torchvision, or with the formula written out where torch has no such loss. The benchmark
also checks that both agree, so an entry doubles as a float32 check at scale.

Entries are written from the specification of each loss (issue 3); an entry for a loss that is not
registered is simply not run. Losses without an entry are listed as skipped: add one here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

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

    ``make_inputs(size, device)`` returns ``forward``'s arguments (seeded); ``fn(*inputs, **hparams)``
    returns the mean-reduced value; ``hparams`` (a dict, or a function of the size) build our loss;
    ``grad_inputs`` are the positions differentiated in the backward pass.
    """

    make_inputs: Callable[[Size, torch.device], tuple[Tensor, ...]]
    fn: Callable[..., Tensor]
    source: str
    hparams: dict[str, Any] | Callable[[Size], dict[str, Any]] = field(default_factory=dict)
    grad_inputs: tuple[int, ...] = (0,)
    label: str = ""

    def hparams_for(self, size: Size) -> dict[str, Any]:
        return self.hparams(size) if callable(self.hparams) else dict(self.hparams)


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


# ----- reference implementations (mean reduction) ------------------------------------------------------


def effective_number_ce(logits: Tensor, target: Tensor, beta: float, samples_per_class: list[int], **_: Any) -> Tensor:
    """Cui et al. 2019 with a softmax CE base: weights 1 / E_n, E_n = (1 - beta^n) / (1 - beta), sum C."""
    n = torch.tensor(samples_per_class, dtype=torch.float64, device=logits.device)
    weights = (1 - beta) / (1 - beta**n)
    weights = (weights / weights.sum() * len(samples_per_class)).to(logits.dtype)
    return (weights[target] * F.cross_entropy(logits, target, reduction="none")).mean()


def long_tail_counts(size: Size) -> dict[str, Any]:
    """class_balanced on a long tail: class c has ``1000 * 0.99^c + 1`` samples."""
    return {"beta": 0.999, "samples_per_class": [int(1000 * 0.99**c) + 1 for c in range(size[1])]}


def softmax_focal(logits: Tensor, target: Tensor, gamma: float, alpha: float, **_: Any) -> Tensor:
    log_pt = logits.log_softmax(1).gather(1, target[:, None]).squeeze(1)
    return (-alpha * (1 - log_pt.exp()) ** gamma * log_pt).mean()


def sigmoid_focal(logits: Tensor, target: Tensor, gamma: float, alpha: float, **_: Any) -> Tensor:
    import torchvision

    return torchvision.ops.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="mean")


def binary_hinge(scores: Tensor, target: Tensor, **_: Any) -> Tensor:
    return torch.clamp(1 - target * scores, min=0).mean()


def log_cosh(pred: Tensor, target: Tensor, **_: Any) -> Tensor:
    return torch.log(torch.cosh(pred - target)).mean()  # the plain formula: fine for residuals of order 1


def pinball(pred: Tensor, target: Tensor, tau: float, **_: Any) -> Tensor:
    r = target - pred
    return torch.maximum(tau * r, (tau - 1) * r).mean()


def msle(pred: Tensor, target: Tensor, **_: Any) -> Tensor:
    return ((torch.log1p(pred) - torch.log1p(target)) ** 2).mean()


def negative_elbo(recon_logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float, **_: Any) -> Tensor:
    """Bernoulli reconstruction plus beta * KL(N(mu, exp(logvar)) || N(0, I)), summed per sample, batch mean."""
    recon = F.binary_cross_entropy_with_logits(recon_logits, x, reduction="none").sum(1)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
    return (recon + beta * kl).mean()


def contrastive(emb1: Tensor, emb2: Tensor, y: Tensor, margin: float, **_: Any) -> Tensor:
    """Hadsell et al. 2006: 1/2 d^2 for similar pairs, 1/2 max(0, m - d)^2 for dissimilar ones."""
    d = (emb1 - emb2).norm(dim=1)
    return torch.where(y > 0, 0.5 * d**2, 0.5 * torch.clamp(margin - d, min=0) ** 2).mean()


def nt_xent(z1: Tensor, z2: Tensor, temperature: float, **_: Any) -> Tensor:
    """SimCLR: 2N x 2N cosine similarities over the temperature, self-pairs masked, CE on the other view."""
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def iou_loss(pred: Tensor, target: Tensor, eps: float, **_: Any) -> Tensor:
    lt = torch.maximum(pred[:, :2], target[:, :2])
    rb = torch.minimum(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = (pred[:, 2:] - pred[:, :2]).prod(1) + (target[:, 2:] - target[:, :2]).prod(1)
    return (1 - inter / (area - inter + eps)).mean()


def _torchvision_box(name: str) -> Callable[..., Tensor]:
    def fn(pred: Tensor, target: Tensor, eps: float, **_: Any) -> Tensor:
        import torchvision

        return getattr(torchvision.ops, name)(pred, target, reduction="mean", eps=eps)

    return fn


BY_KIND: dict[str, dict[str, list[Reference]]] = {
    "classification": {
        "ce": [Reference(logits_indices, lambda x, t, **_: F.cross_entropy(x, t), "torch")],
        "label_smoothing": [
            Reference(
                logits_indices, lambda x, t, **_: F.cross_entropy(x, t, label_smoothing=0.1), "torch", {"label_smoothing": 0.1}
            )
        ],
        "focal": [
            Reference(logits_indices, softmax_focal, "formula", {"gamma": 2.0, "alpha": 0.25}, label="softmax"),
            Reference(logits_multi_hot, sigmoid_focal, "torchvision", {"gamma": 2.0, "alpha": 0.25}, label="sigmoid"),
        ],
        "bce_logits": [Reference(logits_multi_hot, lambda x, t, **_: F.binary_cross_entropy_with_logits(x, t), "torch")],
        "class_balanced": [Reference(logits_indices, effective_number_ce, "formula", long_tail_counts)],
        "hinge": [
            Reference(logits_indices, lambda x, t, **_: F.multi_margin_loss(x, t), "torch", label="multiclass"),
            Reference(scores_signs, binary_hinge, "formula", label="binary"),
        ],
    },
    "regression": {
        "mse": [Reference(pred_target, lambda p, t, **_: F.mse_loss(p, t), "torch")],
        "mae": [Reference(pred_target, lambda p, t, **_: F.l1_loss(p, t), "torch")],
        "huber": [Reference(pred_target, lambda p, t, delta, **_: F.huber_loss(p, t, delta=delta), "torch", {"delta": 1.0})],
        "smooth_l1": [Reference(pred_target, lambda p, t, beta, **_: F.smooth_l1_loss(p, t, beta=beta), "torch", {"beta": 1.0})],
        "log_cosh": [Reference(pred_target, log_cosh, "formula")],
        "quantile": [Reference(pred_target, pinball, "formula", {"tau": 0.9})],
        "msle": [Reference(positive_pred_target, msle, "formula")],
        "poisson_nll": [
            Reference(
                log_rate_counts,
                lambda p, t, log_input, full, **_: F.poisson_nll_loss(p, t, log_input=log_input, full=full),
                "torch",
                {"log_input": True, "full": False},
            )
        ],
        "gaussian_nll": [
            Reference(
                mean_target_var,
                lambda m, t, v, full, eps, **_: F.gaussian_nll_loss(m, t, v, full=full, eps=eps),
                "torch",
                {"full": False, "eps": 1e-6},
                grad_inputs=(0, 2),
            )
        ],
    },
    "distribution": {
        # torch's KLDivLoss semantics (input log-probabilities, target probabilities)
        "kl_div": [
            Reference(
                log_probs_probs,
                lambda x, t, **_: F.kl_div(x, t, reduction="batchmean"),
                "torch",
                {"reduction": "batchmean", "log_target": False},
            )
        ],
    },
    "elbo": {
        "elbo": [
            Reference(vae_outputs, negative_elbo, "formula", {"beta": 1.0, "reconstruction": "bernoulli"}, grad_inputs=(0, 2, 3))
        ],
    },
    "pair": {
        "hinge_embedding": [
            Reference(
                embedding_pairs,
                lambda a, b, y, margin, **_: F.hinge_embedding_loss(F.pairwise_distance(a, b), y, margin=margin),
                "torch",
                {"margin": 1.0},
                grad_inputs=(0, 1),
            )
        ],
        "cosine_embedding": [
            Reference(
                embedding_pairs,
                lambda a, b, y, margin, **_: F.cosine_embedding_loss(a, b, y, margin=margin),
                "torch",
                {"margin": 0.0},
                grad_inputs=(0, 1),
            )
        ],
        "contrastive": [Reference(embedding_pairs, contrastive, "formula", {"margin": 1.0}, grad_inputs=(0, 1))],
    },
    "triplet": {
        "triplet": [
            Reference(
                embedding_triplets,
                lambda anc, pos, neg, margin, p, swap, **_: F.triplet_margin_loss(anc, pos, neg, margin=margin, p=p, swap=swap),
                "torch",
                {"margin": 1.0, "p": 2, "swap": False},
                grad_inputs=(0, 1, 2),
            )
        ],
        "margin_ranking": [
            Reference(
                embedding_triplets,
                lambda a, p, n, margin, **_: F.margin_ranking_loss(
                    F.cosine_similarity(a, p), F.cosine_similarity(a, n), torch.ones(len(a), device=a.device), margin=margin
                ),
                "torch",
                {"margin": 0.1},
                grad_inputs=(0, 1, 2),
            )
        ],
    },
    "views": {
        "nt_xent": [Reference(two_views, nt_xent, "formula", {"temperature": 0.5}, grad_inputs=(0, 1))],
    },
    "boxes": {
        "iou": [Reference(box_pairs, iou_loss, "formula", {"eps": 1e-7})],
        "giou": [Reference(box_pairs, _torchvision_box("generalized_box_iou_loss"), "torchvision", {"eps": 1e-7})],
        "diou": [Reference(box_pairs, _torchvision_box("distance_box_iou_loss"), "torchvision", {"eps": 1e-7})],
        "ciou": [Reference(box_pairs, _torchvision_box("complete_box_iou_loss"), "torchvision", {"eps": 1e-7})],
    },
}
REFERENCES: dict[str, list[Reference]] = {name: refs for group in BY_KIND.values() for name, refs in group.items()}
