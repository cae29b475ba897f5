"""Frozen features of an encoder, extracted once per split and cached on disk.

The evaluation sees an encoder as a `FeatureSource`: any callable from a batch of a dataset's
images to features, and a key that changes whenever its weights do (for an ssl-coded run, the
checkpoint's content hash). A cache entry is a float32 `.npy` written batch by batch into a memory
map (a split larger than memory streams through), beside its labels, named after the key.

`encoder_source` runs an `nn.Module` (or any callable) the way evaluation should: in eval mode,
on a device, under no_grad, optionally under bf16 autocast.

Example:
    >>> source = encoder_source(model, key=module_key(model), device=resolve_device("auto"))
    >>> features, labels = cached_features(source, test_dataset, "test", cache_dir, num_workers=4)
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

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


def as_tensor(array: Any, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """A numpy array, a memory map or a tensor as a tensor on `device` (default: where it is); a read-only
    array (a cached memory map) is copied, since torch wants memory it may write."""
    if isinstance(array, Tensor):
        return array.detach().to(device=device if device is not None else array.device, dtype=dtype)
    array = np.asarray(array)
    if not array.flags.writeable:
        array = np.array(array)
    return torch.as_tensor(array, device=device, dtype=dtype)


def resolve_device(name: str = "auto") -> torch.device:
    """The device a `--device` value names: `auto` (a CUDA GPU when there is one, else the CPU),
    `cpu`, `cuda` or `cuda:N`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: this machine has no CUDA device; use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 ...)")
    elif device.type != "cpu":
        raise ValueError(f"--device {name!r} is not auto, cpu, cuda or cuda:N")
    return device


def encoder_source(
    encoder: Callable[[Tensor], Tensor],
    key: str = "",
    device: str | torch.device = "cpu",
    autocast: bool = False,
) -> FeatureSource:
    """An encoder as the evaluation runs it: in eval mode and on `device` (an `nn.Module`), fed each
    batch on `device`, under no_grad, optionally under bf16 autocast; features come back as float32.

    Args:
        encoder: an `nn.Module` or any callable from a batch of the dataset's images to (n, dim) features.
        key: identifies the weights (and what the encoder is fed), to name the feature cache; "" = never cached.
        device: where the encoder runs.
        autocast: run the encoder under bf16 autocast (faster on GPUs and CPUs with native bf16).
    """
    device = torch.device(device)
    if isinstance(encoder, nn.Module):
        encoder.eval().to(device)

    def encode(images: Tensor) -> Tensor:
        images = images.to(device, non_blocking=True)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            return encoder(images).float()

    return FeatureSource(encode, key)


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
    source: FeatureSource, dataset: Dataset, batch_size: int, num_workers: int = 0, split: str = ""
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(float32 features, labels) per batch, with a progress bar on a terminal."""
    pin = torch.cuda.is_available()
    loader = batches(dataset, batch_size, num_workers, pin_memory=pin)
    total = -(-len(dataset) // batch_size)  # type: ignore[arg-type]
    for images, targets in tqdm(loader, total=total, desc=f"features {split}".strip(), leave=False, disable=None):
        yield source.encode(images).float().cpu().numpy(), np.asarray(targets)


@torch.no_grad()
def extract_features(
    source: FeatureSource, dataset: Dataset, batch_size: int = 512, num_workers: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(float32 features, int64 labels) of a whole dataset, in memory."""
    features, labels = [], []
    for batch, targets in encoded_batches(source, dataset, batch_size, num_workers):
        features.append(batch)
        labels.append(targets)
    return np.concatenate(features), np.concatenate(labels).astype(np.int64)


def module_key(module: nn.Module, *extra: object) -> str:
    """A hash of a module's weights and buffers (and of `extra`, e.g. its spec): a feature-cache key
    that changes whenever the weights do, whatever file they came from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    for item in extra:
        digest.update(repr(item).encode())
    return digest.hexdigest()


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
    num_workers: int = 0,
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
        num_workers: DataLoader workers that load (and, for streamed folders, decode) the images.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError(f"the {split} split is empty; check the dataset and its subset sizes")
    if not source.key:
        return extract_features(source, dataset, batch_size, num_workers)
    cache_dir = Path(cache_dir)
    stem = cache_dir / cache_stem(source, split, data_key)
    features_path, labels_path = stem.with_suffix(".features.npy"), stem.with_suffix(".labels.npy")
    if features_path.is_file() and labels_path.is_file():
        return np.load(features_path, mmap_mode="r"), np.load(labels_path)
    labels: list[np.ndarray] = []

    def write(tmp: str) -> None:
        out = None
        start = 0
        for batch, targets in encoded_batches(source, dataset, batch_size, num_workers, split):
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(dataset), batch.shape[1]))
            out[start : start + len(batch)] = batch
            labels.append(targets)
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
