"""Evaluate encoders by the field's protocols, beside the raw-pixel and random-init floors.

`evaluate(run)` extracts (and caches) frozen features of the train, validation and test splits,
then runs weighted kNN with FAISS (presets dino k=20 T=0.07 and instdisc k=200 T=0.1, top-1 and
top-5 from one search), retrieval (test queries against the train gallery: recall@1/5/10, mAP@R on
a seeded subset of queries) and the linear probe, for the encoder and for both floors. It writes
`results.json`, `results-eval.md` and the plots (`embedding.png`, `retrieval.png`,
`confusion.png`) into the run directory.

Example:
    >>> rows = evaluate("runs/simclr-digits", protocols=("knn", "linear"))
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ssl_coded.eval.features import Encoder, cached_features, load_encoder
from ssl_coded.eval.knn_faiss import KnnIndex, neighbour_recall
from ssl_coded.eval.linear_probe import linear_probe, sgd_probe
from ssl_coded.eval.plots import confusion_plot, embedding_map, retrieval_grid
from ssl_coded.eval.retrieval import map_at_r, recall_at_k

from ssl_coded.io import write_json, write_text
from ssl_coded.knn import PRESETS, rank_classes
from ssl_coded.train import build_method

PROTOCOLS = ("knn", "linear")


def knn_metrics(
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
    index = KnnIndex(bank_t, index_kind)
    max_k = max(max(k for k, _ in PRESETS.values()), 10)
    similarity, neighbours = index.search(queries_t, max_k)
    labels = bank_y[neighbours.clamp(min=0)]
    out: dict[str, float] = {}
    for name, (k, temperature) in PRESETS.items():
        ranked = rank_classes(similarity[:, :k], labels[:, :k], num_classes, temperature)
        out[f"knn_{name}_top1"] = float((ranked[:, 0] == query_y).float().mean())
        out[f"knn_{name}_top5"] = float((ranked[:, :5] == query_y[:, None]).any(dim=1).float().mean())
    out |= {f"recall@{k}": v for k, v in recall_at_k(labels, query_y, (1, 5, 10)).items()}
    if index_kind == "ivf":  # what the approximate index costs in neighbours and in answers
        k, temperature = PRESETS["dino"]
        exact_similarity, exact = KnnIndex(bank_t, "exact").search(queries_t, k)
        out[f"ann_neighbour_recall@{k}"] = neighbour_recall(neighbours[:, :k].numpy(), exact.numpy())
        exact_top1 = rank_classes(exact_similarity, bank_y[exact], num_classes, temperature)[:, 0]
        ivf_top1 = rank_classes(similarity[:, :k], labels[:, :k], num_classes, temperature)[:, 0]
        out["ann_top1_agreement"] = float((exact_top1 == ivf_top1).float().mean())

    subset = torch.randperm(len(query_y), generator=torch.Generator().manual_seed(seed))[:map_queries]
    r = int(torch.bincount(bank_y).max())
    _, deep = index.search(queries_t[subset], r)
    out["map@r"] = map_at_r(bank_y[deep.clamp(min=0)], query_y[subset], bank_y)
    return out


def _floor_features(encoder: Encoder, which: str, cache_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    splits = {"train": encoder.splits.train, "val": encoder.splits.val, "test": encoder.splits.test}
    if which == "raw pixels":
        return {s: (d.images.flatten(1).float().numpy() / 255, d.labels.numpy()) for s, d in splits.items()}
    torch.manual_seed(encoder.config.seed)
    random = build_method(encoder.config, encoder.splits).eval()
    floor = Encoder(random, encoder.config, encoder.splits, f"random-{encoder.config.seed}-{encoder.checkpoint_hash}")
    return {s: cached_features(floor, d, s, cache_dir) for s, d in splits.items()}


def evaluate(
    run_or_checkpoint: str | Path,
    protocols: tuple[str, ...] = PROTOCOLS,
    cache_dir: str | Path | None = None,
    data_overrides: dict[str, Any] | None = None,
    floors: bool = True,
    index_kind: str = "exact",
    probe: str = "lbfgs",
    plots: bool = True,
) -> dict[str, dict[str, float]]:
    """{"encoder" | "random init" | "raw pixels": {metric: value}}, also written to the run directory."""
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; choose from {', '.join(PROTOCOLS)}")
    encoder = load_encoder(run_or_checkpoint, data_overrides=data_overrides)
    path = Path(run_or_checkpoint)
    run_dir = path if path.is_dir() else path.parent.parent
    cache = Path(cache_dir) if cache_dir else run_dir / "features"
    splits = {"train": encoder.splits.train, "val": encoder.splits.val, "test": encoder.splits.test}
    sources = {"encoder": {s: cached_features(encoder, d, s, cache) for s, d in splits.items()}}
    if floors:
        sources["random init"] = _floor_features(encoder, "random init", cache)
        sources["raw pixels"] = _floor_features(encoder, "raw pixels", cache)
    rows: dict[str, dict[str, float]] = {}
    confusion = None
    for name, feats in sources.items():
        (train_x, train_y), (val_x, val_y), (test_x, test_y) = feats["train"], feats["val"], feats["test"]
        row: dict[str, float] = {}
        if "knn" in protocols:
            row |= knn_metrics(
                train_x, train_y, test_x, test_y, encoder.splits.num_classes, index_kind, seed=encoder.config.seed
            )
        if "linear" in protocols:
            if probe == "sgd":  # no C to choose: train on train + validation
                joint_x, joint_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
                row["linear_sgd_top1"] = sgd_probe(joint_x, joint_y, np.asarray(test_x), test_y)
            else:
                result = linear_probe(
                    np.asarray(train_x), train_y, np.asarray(val_x), val_y, np.asarray(test_x), test_y
                )
                row |= {"linear_top1": result.test_top1, "linear_top5": result.test_top5, "linear_c": result.best_c}
                confusion = result.confusion if name == "encoder" else confusion
        rows[name] = row
    if plots:
        write_plots(encoder, sources["encoder"], run_dir, confusion)
    existing = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").is_file() else {}
    existing.update(
        {"checkpoint_hash": encoder.checkpoint_hash, "rows": rows, "data": dataclasses.asdict(encoder.config.data)}
    )
    write_json(run_dir / "results.json", existing)
    write_text(run_dir / "results-eval.md", format_rows({str(run_dir): rows}) + "\n")
    return rows


def write_plots(
    encoder: Encoder, features: dict[str, tuple[np.ndarray, np.ndarray]], run_dir: Path, confusion: list | None
) -> None:
    """embedding.png (t-SNE of test features), retrieval.png (6 test queries, top-8 train
    neighbours, wrong classes framed red) and, with a probe, confusion.png."""
    (train_x, train_y), (test_x, test_y) = features["train"], features["test"]
    embedding_map(test_x, test_y, run_dir / "embedding.png", seed=encoder.config.seed)
    queries = torch.randperm(len(test_y), generator=torch.Generator().manual_seed(encoder.config.seed))[:6].numpy()
    index = KnnIndex(torch.from_numpy(np.array(train_x)))
    _, neighbours = index.search(torch.from_numpy(np.asarray(test_x)[queries]), 8)
    splits = encoder.splits
    retrieval_grid(
        splits.test.images[queries],
        test_y[queries],
        splits.train.images,
        train_y,
        neighbours.numpy(),
        run_dir / "retrieval.png",
    )
    if confusion is not None:
        confusion_plot(confusion, run_dir / "confusion.png")


def format_rows(runs: dict[str, dict[str, dict[str, float]]]) -> str:
    """One Markdown table: a row per (run, encoder or floor), a column per metric."""
    metrics = sorted({m for rows in runs.values() for row in rows.values() for m in row if m != "linear_c"})
    lines = ["| run | encoder | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for run, rows in runs.items():
        for name, row in rows.items():
            cells = [f"{row[m]:.4f}" if m in row else "-" for m in metrics]
            lines.append(f"| {Path(run).name} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
