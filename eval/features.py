"""Frozen features of an encoder, extracted once per split and cached on disk.

The evaluation sees an encoder as a `FeatureSource`: any callable from a batch of a dataset's
images to features, and a key that changes whenever its weights do (for an ssl-coded run, the
checkpoint's content hash). A cache entry is a float32 `.npy` written batch by batch into a memory
map (a split larger than memory streams through), beside its labels, named after the key, and a
`.sha256` file of both files' checksums, checked before the entry is reused.

`encoder_source` runs an `nn.Module` (or any callable) the way evaluation should: in eval mode,
on a device, under no_grad, optionally under bf16 autocast. The pass over the data is the project's one
feature extractor, `ssl_coded.data.encode`.

Example:
    >>> source = encoder_source(model, key=module_key(model), device=resolve_device("auto"))
    >>> features, labels = cached_features(source, test_dataset, "test", cache_dir, num_workers=4)
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ssl_coded.data.encode import encode, encoded_batches
from ssl_coded.io import atomic_write, file_sha256, write_json
from ssl_coded.notices import RunWarning


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

    A cache entry is two `.npy` files and a `.sha256` file of their checksums, written last: an entry
    without it (an interrupted extraction) or whose files no longer match it is extracted afresh, with a
    warning. Features holding NaN or inf are refused before anything is cached.

    Args:
        source: the encoder.
        dataset: the split's (image, label) pairs.
        split: its name.
        cache_dir: where cache entries live.
        batch_size: images per encoder call.
        data_key: identifies the data and its preprocessing (name, root, subset sizes, image size, ...);
            part of the cache entry's name.
        num_workers: DataLoader workers that load (and, for streamed folders, decode) the images.

    Raises:
        ValueError: the split is empty, or the encoder's features are not finite.
        OutputError: the cache cannot be written (e.g. a full disk): no partial file is left, and an entry
            left without its checksums is never reused.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError(
            f"the {split} split is empty; check the dataset and the subset sizes data.max_train, data.max_test, "
            "data.max_val and data.val_fraction"
        )
    if not source.key:
        features, labels = encode(source.encode, dataset, batch_size, num_workers)
        _refuse_non_finite(int(np.count_nonzero(~np.isfinite(features))), split)
        return features, labels
    cache_dir = Path(cache_dir)
    stem = cache_dir / cache_stem(source, split, data_key)
    features_path, labels_path, checksum_path = _cache_paths(stem)
    cached = _read_cache(stem)
    if cached is not None:
        return cached
    checksum_path.unlink(missing_ok=True)  # it describes the files about to be replaced
    labels: list[np.ndarray] = []

    def write(tmp: str) -> None:
        out = None
        start = non_finite = 0
        for batch, targets in encoded_batches(source.encode, dataset, batch_size, num_workers, split):
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(dataset), batch.shape[1]))
                _reserve(tmp)
            non_finite += int(np.count_nonzero(~np.isfinite(batch)))
            out[start : start + len(batch)] = batch
            labels.append(targets)
            start += len(batch)
        _refuse_non_finite(non_finite, split)  # inside the write: the partial file is removed, nothing cached
        out.flush()
        del out

    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(features_path, write)
    atomic_write(labels_path, lambda tmp: _save_array(tmp, np.concatenate(labels).astype(np.int64)))
    write_json(checksum_path, {path.name: file_sha256(path) for path in (features_path, labels_path)})
    return np.load(features_path, mmap_mode="r"), np.load(labels_path)


def _read_cache(stem: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A cache entry's arrays if it is complete and matches its checksums; else None, with a warning
    where some of it is there (it is then extracted afresh and replaced)."""
    features, labels, checksum = _cache_paths(stem)
    if not any(path.is_file() for path in (features, labels, checksum)):
        return None
    try:
        expected = json.loads(checksum.read_text())
        if not isinstance(expected, dict):
            raise ValueError(f"{checksum.name} is not a mapping of file names to checksums")
        changed = [path.name for path in (features, labels) if expected.get(path.name) != file_sha256(path)]
        if not changed:
            return np.load(features, mmap_mode="r"), np.load(labels)
        problem = f"{' and '.join(changed)} changed since it was written (its checksum differs)"
    except FileNotFoundError as error:
        problem = f"{Path(str(error.filename)).name} is missing"
    except (OSError, ValueError, EOFError) as error:  # unreadable, not JSON, not an array
        problem = f"it cannot be read ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    warnings.warn(f"feature cache {stem}: {problem}; extracting the features again", RunWarning, stacklevel=3)
    return None


def _cache_paths(stem: Path) -> tuple[Path, Path, Path]:
    """A cache entry's features, labels and checksums."""
    return stem.with_suffix(".features.npy"), stem.with_suffix(".labels.npy"), stem.with_suffix(".sha256")


def _reserve(path: str) -> None:
    """Allocate the blocks of the (sparse) memory-mapped file now, so that a full disk is an OSError here
    rather than a SIGBUS when a page of the map is first written."""
    allocate = getattr(os, "posix_fallocate", None)  # not on macOS: there the map is written unreserved
    if allocate is None:
        return
    with open(path, "r+b") as handle:
        try:
            allocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):  # a file system without it
                raise


def _refuse_non_finite(count: int, split: str) -> None:
    if count:
        raise ValueError(
            f"the encoder's features for the {split} split hold {count} non-finite values (NaN/inf): "
            "its weights are likely diverged; check the checkpoint"
        )


def _save_array(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would append .npy to a bare path
        np.save(handle, array)
