"""Frozen features of a trained encoder, extracted once per split and cached on disk.

A cache entry is a float32 `.npy` written batch by batch into a memory map (a split larger than
memory streams through), beside its labels, named after the checkpoint's content hash: a new or
changed checkpoint never reuses stale features.

Example:
    >>> encoder = load_encoder("runs/simclr-fashion-mnist")
    >>> features, labels = cached_features(encoder, splits.test, "test", cache_dir)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ssl_coded.config import RecipeConfig, config_from_yaml
from ssl_coded.datasets import Splits, TensorImageDataset, load_splits
from ssl_coded.io import atomic_write
from ssl_coded.methods.base import SSLMethod
from ssl_coded.train import CheckpointError, build_method, load_checkpoint_file


@dataclass
class Encoder:
    method: SSLMethod
    config: RecipeConfig
    splits: Splits
    checkpoint_hash: str


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_checkpoint(run_or_checkpoint: str | Path) -> Path:
    """A run directory (its best checkpoint, else its last) or a checkpoint file."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise CheckpointError(f"{path} has no checkpoints/best.ckpt or last.ckpt; pretrain into it first")
    if not path.is_file():
        raise CheckpointError(f"{path} is neither a run directory nor a checkpoint file")
    return path


def load_encoder(run_or_checkpoint: str | Path, device: str = "cpu", data_overrides: dict | None = None) -> Encoder:
    """The trained method (eval mode), its recipe and data splits, from a run or a checkpoint."""
    path = resolve_checkpoint(run_or_checkpoint)
    checkpoint = load_checkpoint_file(path)
    if "recipe_yaml" not in checkpoint or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is not an ssl-coded pretraining checkpoint (no stored recipe); use one from a run"
        )
    config = config_from_yaml(checkpoint["recipe_yaml"])
    for key, value in (data_overrides or {}).items():
        setattr(config.data, key, value)
    splits = load_splits(config.data)
    method = build_method(config, splits)
    try:
        method.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not fit its recipe's model ({str(error).splitlines()[0]})") from error
    return Encoder(method.to(device).eval(), config, splits, file_hash(path))


@torch.no_grad()
def cached_features(
    encoder: Encoder, dataset: TensorImageDataset, split: str, cache_dir: str | Path, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """(features memory map, labels) of a split; extracted on first use, then read from the cache."""
    cache_dir = Path(cache_dir)
    stem = cache_dir / f"{split}-{encoder.checkpoint_hash[:16]}"
    features_path, labels_path = stem.with_suffix(".features.npy"), stem.with_suffix(".labels.npy")
    if features_path.is_file() and labels_path.is_file():
        return np.load(features_path, mmap_mode="r"), np.load(labels_path)
    method = encoder.method
    first = method.backbone(method.to_input(dataset.images[:1].to(method.device)))

    def write(tmp: str) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(dataset), first.shape[1]))
        start = 0
        for images, _ in dataset.loader(batch_size):
            batch = method.backbone(method.to_input(images.to(method.device))).float().cpu().numpy()
            out[start : start + len(batch)] = batch
            start += len(batch)
        out.flush()
        del out

    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(features_path, write)
    atomic_write(labels_path, lambda tmp: _save_array(tmp, dataset.labels.numpy()))
    return np.load(features_path, mmap_mode="r"), np.load(labels_path)


def _save_array(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would append .npy to a bare path
        np.save(handle, array)
