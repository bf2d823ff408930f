"""Batches cut from tensors that already live on the training device (no workers, no host copies)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor


class DeviceBatches:
    """An iterable of batches indexed out of ``tensors`` on their own device, reshuffled each epoch.

    For datasets that fit in GPU memory: the data is uploaded once (as uint8) and every step is a
    gather on the GPU, so no step waits for a DataLoader worker or a host-to-device copy.
    """

    def __init__(self, tensors: tuple[Tensor, ...], batch_size: int, shuffle: bool, drop_last: bool) -> None:
        sizes = {len(t) for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"DeviceBatches: tensors have different lengths {sorted(sizes)}")
        self.tensors, self.batch_size, self.shuffle = tensors, batch_size, shuffle
        self.count = sizes.pop()
        self.drop_last = drop_last and self.count > batch_size

    def __len__(self) -> int:
        return self.count // self.batch_size if self.drop_last else math.ceil(self.count / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        device = self.tensors[0].device
        order = torch.randperm(self.count, device=device) if self.shuffle else torch.arange(self.count, device=device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)
