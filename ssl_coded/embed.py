"""Embeddings of a dataset for downstream use (clustering, deduplication, retrieval, a FAISS index).

`embed(ENCODER, out, ...)` runs any encoder `ssl-coded eval` takes through the project's one feature
extractor (`ssl_coded.data.encode.encoded_batches`) over every split (or the ones named) and writes into
`out/`:

- `embeddings.npy`: (rows, dim) float32 or float16, the splits one after the other, written into a memory
  map batch by batch (a folder larger than memory streams through in bounded memory);
- `items.csv`: row, split, index within the split, path (an ImageFolder's image file, streamed or in memory), label;
- `embed.json`: what made them (the encoder's record, data, splits, dtype, normalisation, versions, the
  command), written last: its presence marks finished embeddings;
- with `index`, `index.faiss` (FAISS flat or IVF over the L2-normalised rows; `faiss.read_index` opens it).

Until it finishes, the embeddings live in `embeddings.npy.partial` beside a progress file; an interrupted
embed continues from its last finished split when run again with the same encoder and settings, and is
refused (naming the folder) with others. Finished embeddings are never rewritten.

Example:
    >>> folder = embed("runs/simclr-digits", "embeddings/digits")
    >>> vectors = numpy.load(folder / "embeddings.npy", mmap_mode="r")
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl_coded.data.encode import batches, encoded_batches
from ssl_coded.encoders import Encoder, resolve_encoder
from ssl_coded.errors import ConfigError
from ssl_coded.io import atomic_write, write_json, write_text
from ssl_coded.provenance import versions
from ssl_coded.results import SCHEMA_VERSION
from ssl_coded.rundir import RunLock

SPLITS = ("train", "val", "test")
DTYPES = ("float32", "float16")
INDEXES = ("flat", "ivf")
PARTIAL, PROGRESS, LABELS = "embeddings.npy.partial", ".embed-progress.json", ".embed-labels.npy.partial"


@dataclass(frozen=True)
class EmbedSettings:
    """What decides the embeddings' values and layout (an interrupted embed continues only under the same).

    Args:
        splits: the splits, in this order.
        dtype: float32 or float16.
        normalize: L2-normalise each row before it is stored.
        index: also write a FAISS index: flat or ivf (None: none).
        batch_size: images per encoder call.
    """

    splits: tuple[str, ...] = SPLITS
    dtype: str = "float32"
    normalize: bool = False
    index: str | None = None
    batch_size: int = 256

    def check(self) -> None:
        if not self.splits or any(s not in SPLITS for s in self.splits) or len(set(self.splits)) < len(self.splits):
            raise ConfigError(f"--split {','.join(self.splits)!r}: name some of {', '.join(SPLITS)}, each once")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.index is not None and self.index not in INDEXES:
            raise ConfigError(f"--index {self.index!r} is not one of {', '.join(INDEXES)}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size} must be at least 1")


def embed(
    spec: str | Path,
    out: str | Path,
    settings: EmbedSettings = EmbedSettings(),
    *,
    data: list[str] | None = None,
    weights: str | Path | None = None,
    prefix: str | None = None,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    command: list[str] | None = None,
) -> Path:
    """Write the embeddings of the encoder's data into `out` and return `out` (arguments as above and as
    `resolve_encoder`'s).

    Raises:
        ConfigError: bad settings, a folder that holds finished embeddings, or an interrupted embed of another
            encoder or settings; all before anything is written.
    """
    settings.check()
    folder = Path(out)
    if (folder / "embed.json").is_file():
        raise ConfigError(f"{folder} already holds finished embeddings (embed.json); give --out another folder")
    if settings.index is not None:
        from ssl_coded.extras import require

        require("faiss", "eval")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    encoder = resolve_encoder(spec, weights, prefix, data=data, device=device)
    datasets = {split: getattr(encoder.splits, split) for split in settings.splits}
    lengths = {split: len(dataset) for split, dataset in datasets.items()}
    # the weights, what they are fed and on which data, the settings and the split sizes: an interrupted
    # embed continues only under the same
    plan = {"encoder": encoder.key, "record": encoder.record, "settings": asdict(settings), "lengths": lengths}
    plan = json.loads(json.dumps(plan))
    _refuse_foreign(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with RunLock(folder):  # one writer per folder; the checks again, inside the lock
        if (folder / "embed.json").is_file():
            raise ConfigError(f"{folder} already holds finished embeddings (embed.json); give --out another folder")
        module = _on_device(encoder.module, torch.device(device))
        return _embed(encoder, module, spec, folder, datasets, plan, settings, num_workers, command, started)


OWN_FILES = {PARTIAL, PROGRESS, LABELS, "embeddings.npy", "items.csv", "index.faiss", "embed.json"}


def _refuse_foreign(folder: Path) -> None:
    """Refuse a folder that holds anything but an earlier embed's own files (nothing of a user's is overwritten)."""
    if not folder.is_dir():
        return
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in OWN_FILES and not p.name.startswith("."))
    if foreign:
        raise ConfigError(f"{folder} holds other files ({', '.join(foreign[:3])}); give --out a new or empty folder")


def _on_device(module: Any, device: torch.device) -> Any:
    """The encoder fed each batch on its device (a run's encoder moves its input itself; a spec's does not)."""

    def run(images: torch.Tensor) -> torch.Tensor:
        return module(images.to(device, non_blocking=True))

    return run


def _embed(
    encoder: Encoder,
    module: Any,
    spec: str | Path,
    folder: Path,
    datasets: dict[str, Any],
    plan: dict[str, Any],
    settings: EmbedSettings,
    num_workers: int,
    command: list[str] | None,
    started: str,
) -> Path:
    lengths = plan["lengths"]
    progress = _read_progress(folder, plan)
    if progress is None:
        dim = _feature_dim(module, datasets[settings.splits[0]])
        progress = {**plan, "dim": dim, "done": [], "started": started}
    dim, rows = progress["dim"], sum(lengths.values())
    if not (folder / "embeddings.npy").exists():  # not yet renamed: fill the partial memory map
        vectors = _memmap(folder / PARTIAL, (rows, dim), settings.dtype)
        labels = _memmap(folder / LABELS, (rows,), "int64")
        offset = 0
        for split, dataset in datasets.items():
            if split not in progress["done"]:
                _fill(module, dataset, split, vectors, labels, offset, settings, num_workers)
                progress["done"].append(split)
                write_json(folder / PROGRESS, progress)  # after the flush: a done split is on disk
            offset += lengths[split]
        del vectors
        os.replace(folder / PARTIAL, folder / "embeddings.npy")
    else:  # renamed by a run stopped before embed.json: only what follows is left to do
        labels = np.load(folder / LABELS, mmap_mode="r")
    _write_items(folder / "items.csv", datasets, np.asarray(labels))
    if settings.index is not None:
        _write_index(folder / "index.faiss", folder / "embeddings.npy", settings.index)
    record = {
        "schema_version": SCHEMA_VERSION,
        "encoder": {"spec": str(spec), **encoder.record},
        "rows": rows,
        "dim": dim,
        "splits": [{"split": s, "rows": lengths[s]} for s in settings.splits],
        **{key: value for key, value in asdict(settings).items() if key != "splits"},
        "files": ["embeddings.npy", "items.csv", *(["index.faiss"] if settings.index else [])],
        "versions": versions(),
        "command": command if command is not None else sys.argv,
        "started": progress["started"],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(folder / "embed.json", record)  # last: its presence marks finished embeddings
    for leftover in (PROGRESS, LABELS):
        (folder / leftover).unlink(missing_ok=True)
    return folder


def _read_progress(folder: Path, plan: dict[str, Any]) -> dict[str, Any] | None:
    """The progress of an interrupted embed into `folder` under the same plan (None: none there)."""
    path = folder / PROGRESS
    if not path.is_file():  # killed before its first split finished: nothing of it is kept
        for partial in (PARTIAL, LABELS):
            (folder / partial).unlink(missing_ok=True)
        return None
    progress = json.loads(path.read_text())
    if progress["done"] and not (folder / PARTIAL).exists() and not (folder / "embeddings.npy").exists():
        raise ConfigError(
            f"{folder} holds the progress of an embed whose rows are gone; delete {folder / PROGRESS} to start again"
        )
    if {key: progress.get(key) for key in plan} != plan:
        raise ConfigError(
            f"{folder} holds an interrupted embed of another encoder, data or settings; "
            "run that command again to finish it, or give --out another folder"
        )
    return progress


def _feature_dim(module: Any, dataset: Any) -> int:
    images, _ = next(iter(batches(dataset, 2)))
    with torch.no_grad():
        return int(module(images).shape[1])


def _memmap(path: Path, shape: tuple[int, ...], dtype: str) -> np.memmap:
    if path.exists():
        return np.lib.format.open_memmap(path, mode="r+")
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def _fill(
    module: Any,
    dataset: Any,
    split: str,
    vectors: np.memmap,
    labels: np.memmap,
    offset: int,
    settings: EmbedSettings,
    num_workers: int,
) -> None:
    """One split's embeddings into rows offset.. of the memory maps, then flushed to disk."""
    row = offset
    for features, targets in encoded_batches(module, dataset, settings.batch_size, num_workers, split):
        if settings.normalize:
            features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        stored = features.astype(settings.dtype)
        if not np.isfinite(stored).all():  # after the cast: float16 overflows above 65504
            fix = "use --normalize or --dtype float32" if settings.dtype == "float16" else "check the encoder"
            raise ValueError(f"non-finite {settings.dtype} embeddings on the {split} split (rows from {row}); {fix}")
        vectors[row : row + len(features)] = stored
        labels[row : row + len(features)] = targets
        row += len(features)
    vectors.flush()
    labels.flush()


def _write_items(path: Path, datasets: dict[str, Any], labels: np.ndarray) -> None:
    """items.csv: row, split, index within the split, path (an ImageFolder's file, else empty), label."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["row", "split", "index", "path", "label"])
    row = 0
    for split, dataset in datasets.items():
        path_of = getattr(dataset, "path", None)
        for index in range(len(dataset)):
            writer.writerow([row, split, index, path_of(index) if callable(path_of) else "", int(labels[row])])
            row += 1
    write_text(path, text.getvalue())


def _write_index(path: Path, embeddings: Path, kind: str) -> None:
    """A FAISS index over the L2-normalised rows (inner product = cosine), as `ssl-coded eval --index`."""
    import faiss

    from ssl_coded.eval.knn_faiss import FaissIndex

    vectors = torch.from_numpy(np.load(embeddings, mmap_mode="r").astype(np.float32))
    index = FaissIndex(vectors, kind).index
    atomic_write(path, lambda tmp: faiss.write_index(index, tmp))
