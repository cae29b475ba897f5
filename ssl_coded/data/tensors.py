"""uint8 images held in memory as one tensor, fetched a whole batch per call.

Small-image datasets fit in memory as uint8 (Fashion-MNIST: 47 MB, CIFAR-10: 180 MB), so a batch
is one indexing operation instead of thousands of per-image calls; augmentation then runs batched
on the training device.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ssl_coded.data.errors import DatasetError


def _batch_as_is(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return batch


def batch_loader(dataset: Dataset, batch_size: int, shuffle: bool, drop_last: bool, num_workers: int) -> DataLoader:
    """A DataLoader over a dataset whose `__getitems__` returns a whole (images, labels) batch."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=_batch_as_is,
        persistent_workers=num_workers > 0,
    )


def as_index(indices: Sequence[int] | Tensor) -> Tensor:
    return torch.as_tensor(indices, dtype=torch.long).reshape(-1)


class TensorImageDataset(Dataset):
    """uint8 images (n, C, H, W) and int64 labels in memory; a batch of indices is fetched in one call.

    Example:
        >>> dataset = TensorImageDataset(torch.zeros(10, 3, 8, 8, dtype=torch.uint8), torch.arange(10))
        >>> images, labels = next(iter(dataset.loader(batch_size=4)))
        >>> dataset.take([0, 9])[0].shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, images: Tensor, labels: Tensor, paths: np.ndarray | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DatasetError(f"images must be uint8 of shape (n, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise DatasetError(f"{len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise DatasetError("the split is empty; check the dataset folder or the split fractions")
        if paths is not None and len(paths) != len(images):
            raise DatasetError(f"{len(images)} images but {len(paths)} file paths")
        self.images, self.labels = images, labels.long()
        self.paths = paths  # the image files the rows were decoded from (an ImageFolder), as fixed-width bytes

    def path(self, index: int) -> str:
        """The file row `index` was decoded from, or "" for data that did not come from files."""
        return "" if self.paths is None else os.fsdecode(self.paths[index])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]

    def take(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        """(uint8 images, labels) at `indices`, in their order."""
        index = as_index(indices)
        return self.images[index], self.labels[index]

    def loader(
        self, batch_size: int, shuffle: bool = False, drop_last: bool = False, num_workers: int = 0
    ) -> DataLoader:
        return batch_loader(self, batch_size, shuffle, drop_last, num_workers)

    def select(self, index: Tensor) -> TensorImageDataset:
        """The rows at `index` (a copy), as a dataset."""
        paths = None if self.paths is None else self.paths[torch.as_tensor(index).numpy()]  # a mask too
        return TensorImageDataset(self.images[index], self.labels[index], paths)

    def subset(self, size: int, seed: int = 0) -> TensorImageDataset:
        if size <= 0 or size >= len(self):
            return self
        return self.select(torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:size])
