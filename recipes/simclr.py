"""SimCLR (Chen et al. 2020): two random views per image, encoder + projection head, a ``loss`` slot of kind views.

The loss sees the projections (with ``data.unlabelled``, of an unlabelled folder's images: the online probe then
has no training labels and is not trained); evaluation uses the encoder's features, frozen: a kNN classifier
(cosine, weighted vote) and a linear probe fitted on the training split (all labels, and
``probe_labels_per_class`` labels per class), accuracy on val and test. An online linear probe on
detached features may train alongside (labels never reach the encoder). With ``baselines`` the test
also scores raw pixels and a freshly initialised encoder (drawn with ``random_seed``, the run's seed in the
configs) the same way (Chen et al. 2020's reference rows). With ``supervised`` a copy of the encoder (same
initial weights, same first views) trains with cross-entropy on the labels alongside, and its frozen features
are scored the same way (test/supervised_*): the supervised upper bound of the probes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchmetrics import CatMetric
from torchmetrics.classification import MulticlassAccuracy

from losses.errors import check, check_integer, check_number
from recipes.base import OptimizerFactory, SchedulerFactory, Task
from recipes.data.views import ViewAugment


def knn_predict(features: Tensor, bank: Tensor, bank_labels: Tensor, num_classes: int, k: int, temperature: float) -> Tensor:
    """Class scores of a weighted kNN vote (Wu et al. 2018): the k most cosine-similar bank rows vote ``exp(s / T)``."""
    features, bank = F.normalize(features, dim=1), F.normalize(bank, dim=1)
    similarity, index = (features @ bank.T).topk(min(k, len(bank)), dim=1)
    votes = torch.zeros(len(features), num_classes, device=features.device, dtype=features.dtype)
    return votes.scatter_add_(1, bank_labels[index], (similarity / temperature).exp())


def fit_linear_probe(features: Tensor, labels: Tensor, num_classes: int, steps: int, weight_decay: float) -> nn.Module:
    """Multinomial logistic regression on standardised frozen features, full-batch L-BFGS."""
    with torch.inference_mode(False), torch.enable_grad():
        x, y = features.clone().float(), labels.clone()
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        linear = nn.Linear(x.shape[1], num_classes).to(x.device)
        optimizer = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")
        x = (x - mean) / std

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(linear(x), y) + weight_decay * linear.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
    probe = nn.Sequential(Standardise(mean, std), linear).requires_grad_(False)
    return probe


def first_per_class(labels: Tensor, k: int) -> Tensor:
    """Indices of the first ``k`` rows of each class in ``labels`` (all of a class's rows when it has fewer)."""
    order = torch.arange(len(labels), device=labels.device)
    rank = torch.zeros_like(labels)
    for c in labels.unique():
        members = labels == c
        rank[members] = torch.arange(int(members.sum()), device=labels.device)
    return order[rank < k]


class Standardise(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach())
        self.register_buffer("std", std.detach())

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class SimCLRTask(Task):
    """Self-supervised contrastive pre-training; labels are used only to evaluate the frozen features."""

    slots: ClassVar[dict[str, tuple[str, ...]]] = {"loss": ("views",)}
    batch = "images+labels"
    model_outputs = {"model": "embedding"}
    val_metrics = ("loss", "knn_acc")
    module_arguments: ClassVar[tuple[str, ...]] = ("augment",)

    @classmethod
    def validation_metrics(cls, cfg: Any, losses: Mapping[str, nn.Module]) -> list[str]:
        """Also the online probe's loss and accuracy, with ``task.online_probe``."""
        probe = ["val/probe_loss", "val/online_acc"] if cfg.task.get("online_probe", True) else []
        return [*super().validation_metrics(cfg, losses), *probe]

    def __init__(
        self,
        model: nn.Module,
        losses: dict[str, nn.Module],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        augment: nn.Module | None = None,
        projection_dim: int = 64,
        projection_hidden: int | None = None,
        num_classes: int = 10,
        knn_k: int = 20,
        knn_temperature: float = 0.07,
        probe_steps: int = 100,
        probe_weight_decay: float = 1e-4,
        online_probe: bool = True,
        gather: bool = True,
        eval_train_samples: int | None = None,
        probe_labels_per_class: int = 10,
        baselines: bool = True,
        random_seed: int | None = 0,
        supervised: bool = False,
    ) -> None:
        super().__init__(model, losses, optimizer, scheduler)
        owner = self.owner()
        feature_dim = getattr(model, "feature_dim", None)
        encoder = feature_dim is not None and isinstance(getattr(model, "head", nn.Identity()), nn.Identity)
        need = "model must be an encoder with `feature_dim` and no output head (model.num_outputs=0): SimCLR trains its features"
        check(owner, encoder, need, type(model).__name__)
        for name, value in (("knn_k", knn_k), ("probe_steps", probe_steps), ("probe_labels_per_class", probe_labels_per_class)):
            check_integer(owner, name, value, low=1)
        check_number(owner, "knn_temperature", knn_temperature, low=0, low_open=True)
        self.augment = augment if augment is not None else ViewAugment()
        hidden = projection_hidden or feature_dim
        self.projector = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, projection_dim))
        # standardising the detached features lets the online probe keep up with the encoder's drifting scale
        standardise = nn.BatchNorm1d(feature_dim, affine=False)
        self.probe = nn.Sequential(standardise, nn.Linear(feature_dim, num_classes)) if online_probe else None
        # ModuleDict keys must not shadow nn.Module methods such as train()
        stages = ("train_", "val_", "test_")
        self.online_acc = nn.ModuleDict({s: MulticlassAccuracy(num_classes, average="micro") for s in stages})
        self.eval_features = nn.ModuleDict({s: CatMetric() for s in ("val", "test")})
        self.eval_labels = nn.ModuleDict({s: CatMetric() for s in ("val", "test")})
        # the supervised upper bound: the same encoder from the same initial weights, trained on labels
        self.supervised = nn.Sequential(copy.deepcopy(model), nn.Linear(feature_dim, num_classes)) if supervised else None

    def forward(self, images: Tensor) -> Tensor:
        """The encoder's features: what is evaluated and transferred."""
        return self.model(images)

    def views_loss(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Two random views, encoded together, projected, and the views loss on the projections; also the first
        view's features and the first view itself."""
        v1, v2 = self.augment(images), self.augment(images)
        features = self(torch.cat([v1, v2]))
        z1, z2 = self.projector(features).chunk(2)
        return self.losses["loss"](z1, z2, gather=self.hparams.gather), features[: len(images)], v1

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        loss, features, view = self.views_loss(images)
        self.log_loss("train", "loss", loss, batch_size=len(images))
        unlabelled = self.unlabelled_training()
        if self.supervised is not None and not unlabelled:  # disjoint parameters: each model gets its own gradient
            supervised_loss = F.cross_entropy(self.supervised(view).float(), labels)
            self.log_train({"supervised_loss": supervised_loss}, batch_size=len(labels))
            loss = loss + supervised_loss
        if self.probe is None or unlabelled:
            return loss
        return loss + self.online_probe_loss("train", features.detach(), labels)

    def on_fit_start(self) -> None:
        """The supervised upper bound trains on labels, which an unlabelled training folder does not have."""
        check(
            self.owner(),
            self.supervised is None or not self.unlabelled_training(),
            "task.supervised needs labelled training images (set task.supervised=false, or drop data.unlabelled)",
            "supervised=true with data.unlabelled",
        )

    def unlabelled_training(self) -> bool:
        """Training batches from an unlabelled folder (``data.unlabelled``, labels -1): the online probe has no target."""
        trainer = self._trainer  # None when the step is called outside a Trainer
        return trainer is not None and bool(getattr(trainer.datamodule, "unlabelled_files", None))

    def online_probe_loss(self, stage: str, features: Tensor, labels: Tensor) -> Tensor:
        """The online probe's loss on detached features; its accuracy accumulates in a metric, logged per epoch."""
        logits = self.probe(features)
        probe_loss = F.cross_entropy(logits, labels)
        self.online_acc[f"{stage}_"].update(logits, labels)
        if stage == "train":  # no Lightning log call on a training step that writes no logs
            self.log_train({"probe_loss": probe_loss}, batch_size=len(labels))
        else:
            self.log(f"{stage}/probe_loss", probe_loss, on_step=False, on_epoch=True, batch_size=len(labels), sync_dist=True)
            self.log(f"{stage}/online_acc", self.online_acc[f"{stage}_"], on_step=False, on_epoch=True, batch_size=len(labels))
        return probe_loss

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self.probe is not None and not self.unlabelled_training():
            self.log("train/online_acc", self.online_acc["train_"].compute(), sync_dist=True)
            self.online_acc["train_"].reset()

    # ----- frozen-feature evaluation ----------------------------------------------------------
    def evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        images, labels = batch
        loss, _, _ = self.views_loss(images)
        self.log_loss(stage, "loss", loss, batch_size=len(images))
        features = self(images)
        self.eval_features[stage].update(features.float())
        self.eval_labels[stage].update(labels.float())
        if self.probe is not None:
            self.online_probe_loss(stage, features, labels)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        features, labels = self.gathered("test")
        bank, bank_labels = self.split_features("train", self)
        results = self.frozen_accuracy(features, labels, bank, bank_labels, linear_probe=True)
        references = []
        if self.hparams.baselines:
            references += [("pixel", lambda images: images.flatten(1)), ("random", self.random_encoder())]
        if self.supervised is not None:
            references.append(("supervised", self.supervised[0]))
        for name, encode in references:
            bank, bank_labels = self.split_features("train", encode)
            test, test_labels = self.split_features("test", encode)
            scores = self.frozen_accuracy(test, test_labels, bank, bank_labels, linear_probe=True)
            results.update({f"{name}_{k}": v for k, v in scores.items()})
        self.log_dict({f"test/{k}": v for k, v in results.items()}, sync_dist=True)

    def gathered(self, stage: str) -> tuple[Tensor, Tensor]:
        """The features and labels collected over this evaluation epoch (every rank's), then cleared."""
        features, labels = self.eval_features[stage].compute(), self.eval_labels[stage].compute().long()
        self.eval_features[stage].reset()
        self.eval_labels[stage].reset()
        return features, labels

    def frozen_accuracy(
        self, features: Tensor, labels: Tensor, bank: Tensor, bank_labels: Tensor, linear_probe: bool
    ) -> dict[str, Tensor]:
        """kNN and linear-probe accuracy of ``features``, with the training features ``bank`` as neighbours and probe set.

        ``probe{k}_acc`` fits the probe on the first k training images of each class only: the few-label regime.
        """
        n, hp = self.hparams.num_classes, self.hparams
        scores = knn_predict(features, bank, bank_labels, n, hp.knn_k, hp.knn_temperature)
        results = {"knn_acc": (scores.argmax(1) == labels).float().mean()}
        if linear_probe:
            few = first_per_class(bank_labels, hp.probe_labels_per_class)
            for name, rows in (("probe_acc", slice(None)), (f"probe{hp.probe_labels_per_class}_acc", few)):
                probe = fit_linear_probe(bank[rows], bank_labels[rows], n, hp.probe_steps, hp.probe_weight_decay)
                results[name] = (probe(features).argmax(1) == labels).float().mean()
        return results

    def on_validation_epoch_end(self) -> None:
        # computed from features gathered over every rank: the same value everywhere
        features, labels = self.gathered("val")
        bank, bank_labels = self.split_features("train", self)
        knn = self.frozen_accuracy(features, labels, bank, bank_labels, linear_probe=False)["knn_acc"]
        self.log("val/knn_acc", knn, prog_bar=True, sync_dist=True)

    def random_encoder(self) -> nn.Module:
        """A copy of the encoder with fresh initial weights, drawn with ``random_seed`` (the run's seed in the configs,
        so the seeds of a sweep score as many draws; null: 0) without touching the run's random state."""
        encoder = copy.deepcopy(self.model).eval()
        seed = self.hparams.random_seed
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(0 if seed is None else seed)
            for module in encoder.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        return encoder

    @torch.no_grad()
    def split_features(self, split: str, encode) -> tuple[Tensor, Tensor]:
        """``encode`` applied to the (first ``eval_train_samples``) unaugmented images of one split."""
        dm = self.trainer.datamodule
        if hasattr(dm, "loader"):
            loader = dm.loader(split, train=False)
        else:
            loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[split]()
        limit = self.hparams.eval_train_samples if split == "train" else None
        features, labels, seen = [], [], 0
        for batch in loader:
            images, y = dm.on_after_batch_transfer(tuple(t.to(self.device) for t in batch), 0)
            features.append(encode(images).float())
            labels.append(y)
            seen += len(y)
            if limit is not None and seen >= limit:
                break
        return torch.cat(features)[:limit], torch.cat(labels)[:limit]

    def on_train_start(self) -> None:
        """Log a grid of a few images and two random views of each, to see what the loss has to match."""
        images, _ = self.examples("val", 8)
        with torch.no_grad():
            rows = torch.cat([images, self.augment(images), self.augment(images)])
        lo, hi = rows.amin(), rows.amax()
        grid = torchvision.utils.make_grid((rows - lo) / (hi - lo + 1e-8), nrow=8, pad_value=1.0)
        self.log_image("train/views", grid, caption="rows: images, view 1, view 2")
