"""Features of a dataset: one pass of an encoder over its batches, in order. The project's one feature
extractor: the training summary's kNN and floors, and every evaluation protocol (through the feature
cache, `ssl_coded.eval.features`), call `encode`.

An encoder here is any callable from a batch of the dataset's images (uint8, (n, C, H, W)) to (n, dim)
features; it moves the batch where it runs. The raw-pixel floor is such a callable, `raw_pixels`.

Example:
    >>> features, labels = encode(model, splits.test, batch_size=256)
    >>> pixels, _ = encode(raw_pixels, splits.test)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


def raw_pixels(images: Tensor) -> Tensor:
    """The raw-pixel floor's features: images flattened to vectors, uint8 ones scaled to [0, 1]."""
    flat = images.flatten(1).float()
    return flat / 255 if images.dtype == torch.uint8 else flat


def batches(
    dataset: Dataset, batch_size: int, num_workers: int = 0, pin_memory: bool = False
) -> Iterable[tuple[Tensor, Tensor]]:
    """(images, labels) batches in order: the dataset's own loader where it has one (in-memory data:
    a batch in one call; streamed folders: decoded in the workers), else a DataLoader."""
    loader = _batch_loader(dataset)
    if loader is not None:  # no workers named: a streamed folder takes its own data.num_workers
        return loader(batch_size, num_workers=num_workers) if num_workers else loader(batch_size)
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)


def _batch_loader(dataset: Dataset) -> Any:
    """The project datasets' `loader(batch_size, ..., num_workers)`, or None (torchvision's ImageFolder
    has a `loader` attribute too: its image-file reader)."""
    loader = getattr(dataset, "loader", None)
    try:
        parameters = inspect.signature(loader).parameters if callable(loader) else {}
    except (TypeError, ValueError):
        return None
    return loader if {"batch_size", "num_workers"} <= set(parameters) else None


def encoded_batches(
    encoder: Callable[[Tensor], Tensor], dataset: Dataset, batch_size: int, num_workers: int = 0, split: str = ""
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(float32 features, labels) per batch, under no_grad, with a progress bar on a terminal (where tqdm is)."""
    loader = batches(dataset, batch_size, num_workers, pin_memory=torch.cuda.is_available())
    total = -(-len(dataset) // batch_size)  # type: ignore[arg-type]
    for images, targets in _progress(loader, total, f"features {split}".strip()):
        with torch.no_grad():
            features = encoder(images)
        yield features.float().cpu().numpy(), np.asarray(targets)


def _progress(items: Iterable, total: int, desc: str) -> Iterable:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the core install has no tqdm: no bar, the same features
        return items
    return tqdm(items, total=total, desc=desc, leave=False, disable=None)


def encode(
    encoder: Callable[[Tensor], Tensor], dataset: Dataset, batch_size: int = 512, num_workers: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(float32 features, int64 labels) of a whole dataset, in memory, in the dataset's order.

    Args:
        encoder: a batch of the dataset's images -> (n, dim) features (an `nn.Module` in eval mode, a method's
            `encode`, `raw_pixels`, ...).
        dataset: (image, label) pairs; the project's datasets are read a batch per call.
        batch_size: images per encoder call.
        num_workers: DataLoader workers that load (and, for streamed folders, decode) the images.
    """
    features, labels = [], []
    for batch, targets in encoded_batches(encoder, dataset, batch_size, num_workers):
        features.append(batch)
        labels.append(targets)
    return np.concatenate(features), np.concatenate(labels).astype(np.int64)
