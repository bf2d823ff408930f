"""Siamese verification: one shared encoder, a ``loss`` slot of kind pair or triplet.

Reports verification ROC-AUC, equal error rate, accuracy at a distance threshold (chosen on val,
applied to test) and the mean distance of same-class and different-class pairs, scored with the
distance the loss itself shapes (``loss.distance``); logs a PCA projection of test embeddings.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torchmetrics import CatMetric, Metric
from torchmetrics.functional.classification import binary_auroc, binary_roc

from losses.errors import check, check_integer
from recipes.base import OptimizerFactory, SchedulerFactory, Task, figure_image


def equal_error_rate(distances: Tensor, same: Tensor) -> Tensor:
    """The error rate where false accepts equal false rejects, interpolated along the ROC curve."""
    fpr, tpr, _ = binary_roc(-distances, same.long())
    fnr = 1 - tpr
    k = int(torch.nonzero(fnr <= fpr)[0])  # the first point past the crossing (fpr rises, fnr falls)
    if k == 0:
        return fpr[0]
    d0, d1 = fpr[k - 1] - fnr[k - 1], fpr[k] - fnr[k]  # d0 < 0 <= d1
    w = d0 / (d0 - d1)
    return fpr[k - 1] + w * (fpr[k] - fpr[k - 1])


def best_threshold(distances: Tensor, same: Tensor) -> tuple[Tensor, Tensor]:
    """The threshold ``t`` (call a pair "same" when ``distance <= t``) of highest accuracy, and that accuracy."""
    order = distances.argsort()
    d, s = distances[order], same[order].float()
    n, positives = len(d), s.sum()
    accepted_same = torch.cat([s.new_zeros(1), s.cumsum(0)])  # same pairs among the k smallest, k = 0..n
    accepted = torch.arange(n + 1, dtype=s.dtype, device=s.device)
    correct = accepted_same + (n - accepted) - (positives - accepted_same)
    k = int(correct.argmax())
    edges = torch.cat([d[:1] - 1, d, d[-1:] + 1])  # below everything, the sorted distances, above everything
    return (edges[k] + edges[k + 1]) / 2, correct[k] / n


def accuracy_at(distances: Tensor, same: Tensor, threshold: Tensor) -> Tensor:
    return ((distances <= threshold) == same).float().mean()


class Verification(Metric):
    """Distances and same/different labels of every evaluated pair (synced across ranks), and their summary."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("distances", default=[], dist_reduce_fx="cat")
        self.add_state("same", default=[], dist_reduce_fx="cat")

    def update(self, distances: Tensor, same: Tensor) -> None:
        self.distances.append(distances.detach().float())
        self.same.append(same.detach().bool())

    def values(self) -> tuple[Tensor, Tensor]:
        def cat(x: Tensor | list[Tensor]) -> Tensor:
            return torch.cat(x) if isinstance(x, list) else x

        return cat(self.distances), cat(self.same)

    def compute(self, threshold: Tensor | None = None) -> dict[str, Tensor]:
        """ROC-AUC, EER, mean distances; accuracy at ``threshold``, or at this set's best one if none is given."""
        d, same = self.values()
        best, best_acc = best_threshold(d, same)
        return {
            "roc_auc": binary_auroc(-d, same.long()),
            "eer": equal_error_rate(d, same),
            "acc": best_acc if threshold is None else accuracy_at(d, same, threshold),
            "threshold": best if threshold is None else threshold,
            "pos_distance": d[same].mean(),
            "neg_distance": d[~same].mean(),
        }


class SiameseTask(Task):
    """Metric learning for verification: embed both sides with one encoder, train on pairs or triplets."""

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("pair", "triplet")}
    batch = "pairs/triplets"
    model_outputs = {"model": "embedding"}
    val_metrics = ("roc_auc", "eer", "acc", "threshold", "pos_distance", "neg_distance")

    def __init__(
        self,
        model: nn.Module,
        losses: dict[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        open_set: bool = True,
        projection_points: int = 1000,
    ) -> None:
        super().__init__(model, losses, optimizer, scheduler)
        check_integer(self.owner(), "projection_points", projection_points, low=1)
        self.kind = self.losses["loss"].kind
        self.val_pairs, self.test_pairs = Verification(), Verification()
        self.test_pixel_pairs = Verification()  # the baseline: Euclidean distance between the raw pixels
        self.test_embeddings, self.test_classes = CatMetric(), CatMetric()
        self.threshold = torch.tensor(float("nan"))  # "same" when distance <= threshold; chosen on val
        self.pixel_threshold = torch.tensor(float("nan"))

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def embed(self, *batches: Tensor) -> tuple[Tensor, ...]:
        """Embed several image batches in one pass (one set of batch-norm statistics) and split them again."""
        return self(torch.cat(batches)).split([len(b) for b in batches])

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """The dissimilarity the loss trains, used for scoring pairs."""
        return self.losses["loss"].distance(a.float(), b.float())

    def on_fit_start(self) -> None:
        dm = self.trainer.datamodule
        kind, open_set = getattr(dm, "kind", None), getattr(dm, "open_set", None)
        owner, name = self.owner(), self.losses["loss"].name
        need = f"loss '{name}' takes {self.kind}s, so the datamodule must yield them: set data.tuples=${{loss.name}}"
        check(owner, kind == self.kind, need, kind or "neither pairs nor triplets")
        agree = open_set is None or open_set == self.hparams.open_set
        check(owner, agree, f"open_set must match data.open_set={open_set}", self.hparams.open_set)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        if self.kind == "pair":
            x1, x2, y = batch
            loss = self.losses["loss"](*self.embed(x1, x2), y)
        else:
            anchor, positive, negative = batch
            loss = self.losses["loss"](*self.embed(anchor, positive, negative))
        self.log_loss("train", "loss", loss, batch_size=len(batch[0]))
        return loss

    # ----- verification -----------------------------------------------------------------------
    def score_pairs(self, batch: tuple[Tensor, ...], metric: Verification) -> tuple[Tensor, Tensor]:
        x1, x2, y, c1, _ = batch
        e1, e2 = self.embed(x1, x2)
        metric.update(self.distance(e1, e2), y == 1)
        return e1, c1

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self.score_pairs(batch, self.val_pairs)

    def on_validation_epoch_end(self) -> None:
        results = self.val_pairs.compute()
        self.threshold = results["threshold"]
        # computed from the pairs of every rank: the same value everywhere
        self.log_dict({f"val/{k}": v for k, v in results.items() if k != "roc_auc"}, sync_dist=True)
        self.log("val/roc_auc", results["roc_auc"], prog_bar=True, sync_dist=True)
        self.val_pairs.reset()

    def on_test_epoch_start(self) -> None:
        """Choose the threshold on val with the weights under test (no test data is looked at)."""
        loader = self.trainer.datamodule.val_dataloader()
        metric, pixels = Verification().to(self.device), Verification().to(self.device)
        with torch.no_grad():
            for batch in loader:
                batch = self.trainer.datamodule.on_after_batch_transfer(tuple(t.to(self.device) for t in batch), 0)
                self.score_pairs(batch, metric)
                score_pixels(batch, pixels)
        self.threshold = metric.compute()["threshold"]
        self.pixel_threshold = pixels.compute()["threshold"]

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        embeddings, classes = self.score_pairs(batch, self.test_pairs)
        score_pixels(batch, self.test_pixel_pairs)
        self.test_embeddings.update(embeddings.float())
        self.test_classes.update(classes.float())

    def on_test_epoch_end(self) -> None:
        results = self.test_pairs.compute(threshold=self.threshold)
        pixels = self.test_pixel_pairs.compute(threshold=self.pixel_threshold)
        results.update({f"pixel_{k}": pixels[k] for k in ("roc_auc", "eer", "acc")})
        self.log_dict({f"test/{k}": v for k, v in results.items()}, sync_dist=True)
        self.test_pairs.reset()
        self.test_pixel_pairs.reset()
        embeddings, classes = self.test_embeddings.compute(), self.test_classes.compute().long()
        self.test_embeddings.reset()
        self.test_classes.reset()
        n = self.hparams.projection_points
        self.log_image(
            "test/embeddings_pca",
            projection_image(embeddings[:n].cpu(), classes[:n].cpu(), self.losses["loss"].distance_name),
            caption=f"PCA of {min(n, len(classes))} test embeddings, coloured by class",
        )


def score_pixels(batch: tuple[Tensor, ...], metric: Verification) -> None:
    """Score a batch of pairs by the Euclidean distance of their raw pixels: what an untrained verifier does."""
    x1, x2, y = batch[:3]
    metric.update((x1.flatten(1).float() - x2.flatten(1).float()).norm(dim=1), y == 1)


def pca_2d(x: Tensor) -> Tensor:
    """The first two principal components of the rows of ``x``."""
    centred = x - x.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T


def projection_image(embeddings: Tensor, classes: Tensor, distance_name: str) -> Tensor:
    """A scatter plot of the 2-D PCA of ``embeddings`` (l2-normalised first for cosine distances) as ``[3,H,W]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if distance_name == "cosine":
        embeddings = torch.nn.functional.normalize(embeddings, dim=1)
    points = pca_2d(embeddings.double()).numpy()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    scatter = ax.scatter(points[:, 0], points[:, 1], c=classes.numpy(), cmap="tab10", s=6, vmin=0, vmax=9)
    ax.legend(*scatter.legend_elements(), fontsize=6, loc="best", markerscale=0.7)
    ax.set(title=f"test embeddings (PCA, {distance_name})", xticks=[], yticks=[])
    fig.tight_layout()
    return figure_image(fig)
