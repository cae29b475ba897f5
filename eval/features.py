"""Frozen features of an encoder, extracted once per split and cached on disk.

The evaluation sees an encoder as a `FeatureSource`: any callable from a batch of a dataset's
images to features, and a key that changes whenever its weights do (for an ssl-coded run, the
checkpoint's content hash). A cache entry is a float32 `.npy` written batch by batch into a memory
map (a split larger than memory streams through), beside its labels, named after the key.

Example:
    >>> source = FeatureSource(encode=model, key=weights_hash)
    >>> features, labels = cached_features(source, test_dataset, "test", cache_dir)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ssl_coded.io import atomic_write


@dataclass
class FeatureSource:
    """An encoder under evaluation.

    Args:
        encode: a batch of the dataset's images -> (n, dim) features.
        key: identifies the weights; with the data's key it names the feature cache ("" = never
            cached, e.g. raw pixels).
    """

    encode: Callable[[Tensor], Tensor]
    key: str = ""


def batches(dataset: Dataset, batch_size: int) -> Iterable[tuple[Tensor, Tensor]]:
    """(images, labels) batches in order: the dataset's own loader where it has one (a batch in one call)."""
    loader: Any = getattr(dataset, "loader", None)
    return loader(batch_size) if callable(loader) else DataLoader(dataset, batch_size=batch_size)


@torch.no_grad()
def extract_features(source: FeatureSource, dataset: Dataset, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(float32 features, int64 labels) of a whole dataset, in memory."""
    features, labels = [], []
    for images, targets in batches(dataset, batch_size):
        features.append(source.encode(images).float().cpu().numpy())
        labels.append(np.asarray(targets))
    return np.concatenate(features), np.concatenate(labels).astype(np.int64)


def cache_stem(source: FeatureSource, split: str, data_key: str) -> str:
    """The cache entry's name: a hash of everything that changes the features (the weights, the data
    and its preprocessing, the split), so a changed checkpoint or other data never reuse stale ones."""
    return f"{split}-" + hashlib.sha256(f"{source.key}|{data_key}|{split}".encode()).hexdigest()[:16]


@torch.no_grad()
def cached_features(
    source: FeatureSource,
    dataset: Dataset,
    split: str,
    cache_dir: str | Path,
    batch_size: int = 512,
    data_key: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """(features memory map, labels) of a split; extracted on first use, then read from the cache.

    Args:
        source: the encoder.
        dataset: the split's (image, label) pairs.
        split: its name.
        cache_dir: where cache entries live.
        batch_size: images per encoder call.
        data_key: identifies the data and its preprocessing (name, root, subset sizes, image size, ...);
            part of the cache entry's name.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError(f"the {split} split is empty; check the dataset and its subset sizes")
    if not source.key:
        return extract_features(source, dataset, batch_size)
    cache_dir = Path(cache_dir)
    stem = cache_dir / cache_stem(source, split, data_key)
    features_path, labels_path = stem.with_suffix(".features.npy"), stem.with_suffix(".labels.npy")
    if features_path.is_file() and labels_path.is_file():
        return np.load(features_path, mmap_mode="r"), np.load(labels_path)
    labels: list[np.ndarray] = []

    def write(tmp: str) -> None:
        out = None
        start = 0
        for images, targets in batches(dataset, batch_size):
            batch = source.encode(images).float().cpu().numpy()
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(dataset), batch.shape[1]))
            out[start : start + len(batch)] = batch
            labels.append(np.asarray(targets))
            start += len(batch)
        out.flush()
        del out

    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(features_path, write)
    atomic_write(labels_path, lambda tmp: _save_array(tmp, np.concatenate(labels).astype(np.int64)))
    return np.load(features_path, mmap_mode="r"), np.load(labels_path)


def _save_array(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would append .npy to a bare path
        np.save(handle, array)
