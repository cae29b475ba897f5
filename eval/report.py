"""Evaluate encoders by the field's protocols, beside the raw-pixel and random-init floors.

`evaluate(sources, splits, ...)` extracts (and caches) frozen features of the train, validation and
test splits for each source (the encoder and its floors), then runs weighted kNN (presets dino k=20
T=0.07 and instdisc k=200 T=0.1, top-1 and top-5 from one search, `ssl_coded.knn`), retrieval (test
queries against the train gallery: recall@1/5/10, mAP@R on a seeded subset of queries) and the
linear probe. It writes `results.json`, `results-eval.md` and the plots (`embedding.png`,
`retrieval.png`, `confusion.png`) into the output directory.

Example:
    >>> splits = {"train": train_set, "val": val_set, "test": test_set}
    >>> rows = evaluate({"encoder": FeatureSource(model, key)}, splits, num_classes=10, out_dir="out")
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ssl_coded.eval.features import FeatureSource, cached_features
from ssl_coded.eval.knn_faiss import make_index, neighbour_recall
from ssl_coded.eval.linear_probe import linear_probe, sgd_probe
from ssl_coded.eval.plots import confusion_plot, embedding_map, retrieval_grid
from ssl_coded.eval.retrieval import map_at_r, recall_at_k
from torch.utils.data import Dataset

from ssl_coded.io import write_json, write_text
from ssl_coded.knn import PRESETS, KnnBank, knn_metrics, rank_classes

PROTOCOLS = ("knn", "linear")
SPLITS = ("train", "val", "test")


def knn_report(
    bank: np.ndarray,
    bank_labels: np.ndarray,
    queries: np.ndarray,
    query_labels: np.ndarray,
    num_classes: int,
    index_kind: str = "exact",
    map_queries: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """kNN top-1/top-5 for both presets and retrieval metrics, from one search of the bank."""
    # copies: cached features are read-only memory maps
    bank_t, queries_t = torch.from_numpy(np.array(bank)), torch.from_numpy(np.array(queries))
    bank_y, query_y = torch.from_numpy(np.asarray(bank_labels)), torch.from_numpy(np.asarray(query_labels))
    index = make_index(bank_t, index_kind)
    max_k = max(max(k for k, _ in PRESETS.values()), 10)
    similarity, neighbours = index.search(queries_t, max_k)
    out = knn_metrics(bank_t, bank_y, queries_t, query_y, num_classes, neighbours=(similarity, neighbours))
    labels = bank_y[neighbours.clamp(min=0)]
    out |= {f"recall@{k}": v for k, v in recall_at_k(labels, query_y, (1, 5, 10)).items()}
    if index_kind == "ivf":  # what the approximate index costs in neighbours and in answers
        k, temperature = PRESETS["dino"]
        exact_similarity, exact = KnnBank(bank_t).search(queries_t, k)
        out[f"ann_neighbour_recall@{k}"] = neighbour_recall(neighbours[:, :k].numpy(), exact.numpy())
        exact_top1 = rank_classes(exact_similarity, bank_y[exact], num_classes, temperature)[:, 0]
        ivf_top1 = rank_classes(similarity[:, :k], labels[:, :k], num_classes, temperature)[:, 0]
        out["ann_top1_agreement"] = float((exact_top1 == ivf_top1).float().mean())

    subset = torch.randperm(len(query_y), generator=torch.Generator().manual_seed(seed))[:map_queries]
    r = int(torch.bincount(bank_y).max())
    _, deep = index.search(queries_t[subset], r)
    out["map@r"] = map_at_r(bank_y[deep.clamp(min=0)], query_y[subset], bank_y)
    return out


def raw_pixels() -> FeatureSource:
    """The raw-pixel floor: uint8 images flattened to [0, 1] vectors (not cached)."""
    return FeatureSource(lambda images: images.flatten(1).float() / 255)


def evaluate(
    sources: dict[str, FeatureSource],
    splits: dict[str, Dataset],
    num_classes: int,
    out_dir: str | Path,
    protocols: tuple[str, ...] = PROTOCOLS,
    cache_dir: str | Path | None = None,
    index_kind: str = "exact",
    probe: str = "lbfgs",
    seed: int = 0,
    plots: bool = True,
    record: dict[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """{source name: {metric: value}}, also written to `out_dir` (results.json holds `record` too).

    results.json accumulates: the rows of each protocol are merged into those already there, and
    `protocols` records when each was made. A results.json made for another `record` (other data,
    another checkpoint) is first moved aside to `results-<time>.json`, never overwritten.

    Args:
        sources: the encoders, e.g. {"encoder": ..., "random init": ..., "raw pixels": raw_pixels()};
            the first one is plotted.
        splits: "train", "val" and "test" datasets of (image, label).
        num_classes: number of classes.
        out_dir: where results, plots and (by default) the feature cache go.
        protocols: "knn" (kNN and retrieval) and/or "linear" (the probe).
        index_kind: "exact", "flat" or "ivf" (see `ssl_coded.eval.knn_faiss`).
        probe: "lbfgs" (C on validation) or "sgd".
        seed: seeds the retrieval queries and the plots.
        record: what the results are of (e.g. the checkpoint hash and the data settings); also the
            feature cache's data key.
    """
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; choose from {', '.join(PROTOCOLS)}")
    out_dir = Path(out_dir)
    cache = Path(cache_dir) if cache_dir else out_dir / "features"
    data_key = json.dumps(record or {}, sort_keys=True)
    features = {
        name: {s: cached_features(src, splits[s], s, cache, data_key=data_key) for s in SPLITS}
        for name, src in sources.items()
    }
    rows: dict[str, dict[str, float]] = {}
    confusion = None
    for name, feats in features.items():
        (train_x, train_y), (val_x, val_y), (test_x, test_y) = (feats[s] for s in SPLITS)
        row: dict[str, float] = {}
        if "knn" in protocols:
            row |= knn_report(train_x, train_y, test_x, test_y, num_classes, index_kind, seed=seed)
        if "linear" in protocols:
            if probe == "sgd":  # no C to choose: train on train + validation
                joint_x, joint_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
                row["linear_sgd_top1"] = sgd_probe(joint_x, joint_y, np.asarray(test_x), test_y)
            else:
                result = linear_probe(
                    np.asarray(train_x), train_y, np.asarray(val_x), val_y, np.asarray(test_x), test_y
                )
                row |= {"linear_top1": result.test_top1, "linear_top5": result.test_top5, "linear_c": result.best_c}
                confusion = result.confusion if not rows else confusion
        rows[name] = row
    if plots:
        write_plots(features[next(iter(features))], splits, out_dir, confusion, seed)
    merged = accumulate(out_dir / "results.json", rows, protocols, record or {}, {"index": index_kind, "probe": probe})
    write_text(out_dir / "results-eval.md", format_rows({str(out_dir): merged}) + "\n")
    return rows


def accumulate(
    path: Path, rows: dict[str, dict[str, float]], protocols: tuple[str, ...], record: dict, settings: dict
) -> dict[str, dict[str, float]]:
    """Merge new rows into results.json (per protocol, with the time each was made); returns all rows."""
    existing: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    record = json.loads(json.dumps(record))  # as it reads back from the file (tuples become lists)
    if existing and any(existing.get(k) != v for k, v in record.items()):  # results of something else
        made = existing.get("made", "earlier").replace(":", "")
        aside = path.with_name(f"results-{made}.json")
        for n in range(1, 1000):
            if not aside.exists():
                break
            aside = path.with_name(f"results-{made}-{n}.json")
        write_text(aside, path.read_text())
        existing = {}
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    merged: dict[str, dict[str, float]] = existing.get("rows", {})
    for name, row in rows.items():
        merged.setdefault(name, {}).update(row)
    made = existing.get("protocols", {}) | {p: {"made": now, **settings} for p in protocols}
    write_json(path, {**existing, **record, "rows": merged, "protocols": made, "made": now})
    return merged


def images_at(dataset: Dataset, indices: np.ndarray) -> torch.Tensor:
    """The dataset's images at `indices`, stacked (in the indices' shape)."""
    flat = [dataset[int(i)][0] for i in np.asarray(indices).reshape(-1)]
    return torch.stack(flat).view(*np.shape(indices), *flat[0].shape)


def write_plots(
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    splits: dict[str, Dataset],
    out_dir: Path,
    confusion: list | None,
    seed: int,
) -> None:
    """embedding.png (t-SNE of test features), retrieval.png (6 test queries, top-8 train
    neighbours, wrong classes framed red) and, with a probe, confusion.png."""
    (train_x, train_y), (test_x, test_y) = features["train"], features["test"]
    embedding_map(test_x, test_y, out_dir / "embedding.png", seed=seed)
    queries = torch.randperm(len(test_y), generator=torch.Generator().manual_seed(seed))[:6].numpy()
    _, neighbours = KnnBank(torch.from_numpy(np.array(train_x))).search(
        torch.from_numpy(np.asarray(test_x)[queries]), 8
    )
    gallery = images_at(splits["train"], neighbours.numpy())
    retrieval_grid(
        images_at(splits["test"], queries),
        test_y[queries],
        gallery.flatten(0, 1),
        train_y[neighbours.numpy()].reshape(-1),
        np.arange(neighbours.numel()).reshape(neighbours.shape),
        out_dir / "retrieval.png",
    )
    if confusion is not None:
        confusion_plot(confusion, out_dir / "confusion.png")


def format_rows(runs: dict[str, dict[str, dict[str, float]]]) -> str:
    """One Markdown table: a row per (run, encoder or floor), a column per metric."""
    metrics = sorted({m for rows in runs.values() for row in rows.values() for m in row if m != "linear_c"})
    lines = ["| run | encoder | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for run, rows in runs.items():
        for name, row in rows.items():
            cells = [f"{row[m]:.4f}" if m in row else "-" for m in metrics]
            lines.append(f"| {Path(run).name} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
