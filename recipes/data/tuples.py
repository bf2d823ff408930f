"""Pairs and triplets drawn from class labels, for verification (the siamese recipe).

Training batches are ``(x1, x2, y)`` balanced same/different pairs (y = +1 / -1) or
``(anchor, positive, negative)`` triplets, redrawn every epoch; evaluation batches are a fixed,
balanced set of pairs ``(x1, x2, y, class1, class2)``, the same for every loss so results compare.
With ``open_set`` whole classes are kept out of training: the test is on identities never seen, while
validation (checkpoint and threshold selection) sees only the training classes, as a deployed verifier would.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from losses.errors import ConfigError, check, check_integer
from recipes.data.images import ImageDataModule
from recipes.data.sources import Arrays, stratified_split

TUPLE_KINDS = ("pair", "triplet")


class ClassIndex:
    """Indices of the samples of each class, to draw a same-class partner or an other-class one."""

    def __init__(self, labels: Tensor) -> None:
        self.labels = labels
        self.classes = labels.unique(sorted=True)
        self.members = {int(c): (labels == c).nonzero().squeeze(1) for c in self.classes}
        small = [int(c) for c, idx in self.members.items() if idx.numel() < 2]
        if len(self.classes) < 2 or small:
            raise ConfigError(
                f"data: pairs need at least 2 classes with 2 or more samples each (got classes {self.classes.tolist()}, "
                f"{small or 'none'} with fewer than 2)"
            )

    def same(self, i: int, generator: torch.Generator | None = None) -> int:
        """Another sample of the class of sample ``i``."""
        members = self.members[int(self.labels[i])]
        j = i
        while j == i:
            j = int(members[torch.randint(len(members), (1,), generator=generator)])
        return j

    def other(self, i: int, generator: torch.Generator | None = None) -> int:
        """A sample of a class other than that of sample ``i``, the class drawn uniformly."""
        own = int(self.labels[i])
        others = [int(c) for c in self.classes if int(c) != own]
        members = self.members[others[int(torch.randint(len(others), (1,), generator=generator))]]
        return int(members[torch.randint(len(members), (1,), generator=generator)])


class TupleDataset(Dataset):
    """Item ``i`` is sample ``i`` as anchor with a fresh partner: a pair (even ``i`` same class, odd
    ``i`` different, so every epoch is exactly balanced) or a triplet; partners come from the global RNG."""

    def __init__(self, images: Tensor, labels: Tensor, kind: str) -> None:
        self.images, self.kind, self.index = images, kind, ClassIndex(labels)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        if self.kind == "triplet":
            return self.images[i], self.images[self.index.same(i)], self.images[self.index.other(i)]
        similar = i % 2 == 0
        j = self.index.same(i) if similar else self.index.other(i)
        return self.images[i], self.images[j], torch.tensor(1 if similar else -1)


def fixed_pairs(labels: Tensor, count: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``count`` balanced pairs ``(i, j, y)`` of one split, drawn once with a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    index = ClassIndex(labels)
    anchors = torch.randint(len(labels), (count,), generator=generator)
    y = torch.where(torch.arange(count) % 2 == 0, 1, -1)
    partners = [index.same(int(i), generator) if s == 1 else index.other(int(i), generator) for i, s in zip(anchors, y)]
    return anchors, torch.tensor(partners), y


class TupleDataModule(ImageDataModule):
    """Pairs or triplets of the images of ``dataset`` (default mnist5k), chosen by ``tuples``.

    ``tuples`` is ``pair``, ``triplet`` or the name of a loss, whose kind decides (the task config
    passes ``${loss.name}``). ``open_set``: half the images of ``unseen_classes`` form the test (the other
    half is not used), and the other classes split into train and val (``val_fraction`` of them), so nothing
    is selected on the unseen classes; otherwise the usual stratified split of all classes.
    """

    batches = ("pairs/triplets",)

    def __init__(
        self,
        tuples: str = "pair",
        open_set: bool = False,
        unseen_classes: tuple[int, ...] | list[int] = (6, 7, 8, 9),
        eval_pairs: int = 1000,
        **image_args,
    ) -> None:
        super().__init__(**image_args)
        if tuples not in TUPLE_KINDS:
            import losses

            kind = losses.kind_of(tuples)  # ConfigError for an unknown name
            if kind not in TUPLE_KINDS:
                raise ConfigError(f"data.tuples: loss '{tuples}' is of kind '{kind}'; pairs and triplets serve pair, triplet")
            tuples = kind
        self.kind = tuples
        self.open_set = bool(open_set)
        self.unseen_classes = tuple(int(c) for c in unseen_classes)
        check(
            self.owner,
            not self.open_set or 2 <= len(self.unseen_classes) < self.num_classes - 1,
            f"unseen_classes must name 2 to {self.num_classes - 2} classes for open-set verification",
            list(self.unseen_classes),
        )
        self.eval_pairs = check_integer(self.owner, "eval_pairs", eval_pairs, low=2)
        self.pairs: dict[str, tuple[Tensor, Tensor, Tensor]] = {}

    def load(self) -> dict[str, Arrays]:
        """The image splits (open-set when asked), and the fixed val and test pairs drawn from them."""
        splits = self.source_splits()
        if self.open_set:
            splits = self.open_set_splits(splits)
        for offset, split in enumerate(("val", "test")):
            self.pairs[split] = fixed_pairs(splits[split][1], self.eval_pairs, self.split_seed + 1 + offset)
        return splits

    def resident_device(self) -> torch.device:
        """The CPU: training pairs are drawn per item, by a DataLoader."""
        return torch.device("cpu")

    def open_set_splits(self, splits: dict[str, Arrays]) -> dict[str, Arrays]:
        """The seen classes split into train and val; half of the unseen classes' images form the test."""
        images = torch.cat([s[0] for s in splits.values()])
        labels = torch.cat([s[1] for s in splits.values()])
        unseen = torch.isin(labels, torch.tensor(self.unseen_classes))
        missing = set(self.unseen_classes) - set(labels.unique().tolist())
        check(self.owner, not missing, f"unseen_classes must be classes of dataset '{self.dataset}'", sorted(missing))
        held_images, held_labels = images[unseen], labels[unseen]
        test, _ = stratified_split(held_labels, (0.5,), self.split_seed)  # the same test images as ever
        seen_images, seen_labels = images[~unseen], labels[~unseen]
        val, train = stratified_split(seen_labels, (self.val_fraction,), self.split_seed)
        return {
            "train": (seen_images[train], seen_labels[train]),
            "val": (seen_images[val], seen_labels[val]),
            "test": (held_images[test], held_labels[test]),
        }

    def train_dataloader(self) -> DataLoader:
        images, labels = self.splits["train"]
        return DataLoader(
            TupleDataset(images, labels, self.kind),
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=len(labels) > self.batch_size,
            num_workers=self.num_workers,
        )

    def pair_loader(self, split: str) -> DataLoader:
        images, labels = self.splits[split]
        i, j, y = self.pairs[split]
        dataset = torch.utils.data.TensorDataset(images[i], images[j], y, labels[i], labels[j])
        return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self.pair_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.pair_loader("test")
