"""The kNN protocol: weighted kNN and retrieval from one search of the train features.

kNN votes as InstDisc and lightly's `knn_predict` do (the k nearest train rows by cosine similarity,
weighted exp(sim / T)), with the presets dino (k=20, T=0.07) and instdisc (k=200, T=0.1), top-1 and
top-5, from one exact search (`ssl_coded.search.knn`, the same search as a pretraining run's monitor
and summary). Retrieval ranks the gallery for each query: recall@1/5/10 and mAP@R (Musgrave et al.
2020) on a seeded subset of queries. Features and labels may be numpy arrays or torch tensors, on any
device; results are plain dicts of floats.

Example:
    >>> knn(train_x, train_y, test_x, test_y)["knn_dino_top1"]
    >>> retrieval(train_x, train_y, test_x, test_y)["map@r"]
"""

from __future__ import annotations

from typing import Any

import torch
from ssl_coded.eval.features import as_tensor
from ssl_coded.eval.knn_faiss import make_index, neighbour_recall
from ssl_coded.eval.protocols.base import Outcome, SplitFeatures, Task
from ssl_coded.eval.retrieval import map_at_r, recall_at_k
from torch import Tensor

from ssl_coded.search.knn import PRESETS, KnnBank, knn_metrics, rank_classes

__all__ = ["knn", "knn_report", "retrieval", "run"]

RECALL_KS = (1, 5, 10)


def _prepare(bank: Any, bank_labels: Any, queries: Any, query_labels: Any, device: Any) -> tuple[Tensor, ...]:
    bank_t, queries_t = as_tensor(bank, device, torch.float32), as_tensor(queries, device, torch.float32)
    bank_y, query_y = as_tensor(bank_labels, device, torch.long), as_tensor(query_labels, device, torch.long)
    for name, (x, y) in {"train": (bank_t, bank_y), "test": (queries_t, query_y)}.items():
        if len(x) != len(y):
            raise ValueError(f"{name}: {len(x)} features but {len(y)} labels")
        if len(x) == 0:
            raise ValueError(f"the {name} features are empty")
    return bank_t, bank_y, queries_t, query_y


def _num_classes(num_classes: int | None, *labels: Tensor) -> int:
    return num_classes or int(max(int(y.max()) for y in labels)) + 1


def knn(
    train_features: Any,
    train_labels: Any,
    test_features: Any,
    test_labels: Any,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Weighted-kNN top-1 and top-5 of both presets, `knn_{dino,instdisc}_top{1,5}`.

    Args:
        train_features, train_labels: the bank, (n, dim) and (n,).
        test_features, test_labels: the queries.
        num_classes: default: the largest label + 1.
        device: where the search runs (default: where the features are).
    """
    bank, bank_y, queries, query_y = _prepare(train_features, train_labels, test_features, test_labels, device)
    return knn_metrics(bank, bank_y, queries, query_y, _num_classes(num_classes, bank_y, query_y))


def retrieval(
    gallery_features: Any,
    gallery_labels: Any,
    query_features: Any,
    query_labels: Any,
    ks: tuple[int, ...] = RECALL_KS,
    map_queries: int = 1000,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """`recall@k` for each k and `map@r` (on `map_queries` seeded queries) of queries against a gallery."""
    gallery, gallery_y, queries, query_y = _prepare(
        gallery_features, gallery_labels, query_features, query_labels, device
    )
    index = KnnBank(gallery)
    _, neighbours = index.search(queries, max(ks))
    out = {f"recall@{k}": v for k, v in recall_at_k(gallery_y[neighbours], query_y, ks).items()}
    return out | {"map@r": _map_at_r(index, gallery_y, queries, query_y, map_queries, seed)}


def _map_at_r(index: Any, gallery_y: Tensor, queries: Tensor, query_y: Tensor, map_queries: int, seed: int) -> float:
    subset = torch.randperm(len(query_y), generator=torch.Generator().manual_seed(seed))[:map_queries]
    subset = subset.to(queries.device)
    r = int(torch.bincount(gallery_y).max())
    _, deep = index.search(queries[subset], r)
    return map_at_r(gallery_y[deep.clamp(min=0)].cpu(), query_y[subset].cpu(), gallery_y.cpu())


def knn_report(
    bank: Any,
    bank_labels: Any,
    queries: Any,
    query_labels: Any,
    num_classes: int,
    index_kind: str = "exact",
    map_queries: int = 1000,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """`knn` and `retrieval` from one search of the bank (and, for an approximate index, what it
    costs against the exact search: `ann_neighbour_recall@20`, `ann_top1_agreement`).

    Args:
        index_kind: "exact", or FAISS's "flat" or "ivf" (on the CPU; `ssl_coded.eval.knn_faiss`).
        device: where the exact search runs (default: where the features are).
    """
    device = device if index_kind == "exact" else "cpu"
    bank_t, bank_y, queries_t, query_y = _prepare(bank, bank_labels, queries, query_labels, device)
    index = make_index(bank_t, index_kind)
    max_k = max(max(k for k, _ in PRESETS.values()), max(RECALL_KS))
    similarity, neighbours = index.search(queries_t, max_k)
    out = knn_metrics(bank_t, bank_y, queries_t, query_y, num_classes, neighbours=(similarity, neighbours))
    labels = bank_y[neighbours.clamp(min=0)]
    out |= {f"recall@{k}": v for k, v in recall_at_k(labels, query_y, RECALL_KS).items()}
    if index_kind == "ivf":  # what the approximate index costs in neighbours and in answers
        k, temperature = PRESETS["dino"]
        exact_similarity, exact = KnnBank(bank_t).search(queries_t, k)
        out[f"ann_neighbour_recall@{k}"] = neighbour_recall(neighbours[:, :k].numpy(), exact.numpy())
        exact_top1 = rank_classes(exact_similarity, bank_y[exact], num_classes, temperature)[:, 0]
        ivf_top1 = rank_classes(similarity[:, :k], labels[:, :k], num_classes, temperature)[:, 0]
        out["ann_top1_agreement"] = float((exact_top1 == ivf_top1).float().mean())
    out["map@r"] = _map_at_r(index, bank_y, queries_t, query_y, map_queries, seed)
    return out


def run(features: SplitFeatures, task: Task) -> Outcome:
    """kNN and retrieval of the test features against the train features (`knn_report`)."""
    (train_x, train_y), (test_x, test_y) = features["train"], features["test"]
    index = task.settings.index_kind
    return Outcome(
        knn_report(train_x, train_y, test_x, test_y, task.num_classes, index, seed=task.seed, device=task.device)
    )
