"""Weighted kNN on L2-normalised features with FAISS: exact inner-product search, or IVF.

The votes are those of `ssl_coded.knn` (the torch reference): the same neighbours give the same
ranking. Work in progress for issue 4 (harness, retrieval metrics, benchmark to come).

Example:
    >>> ranked = faiss_knn_predict(bank, bank_labels, queries, num_classes=10, k=20, temperature=0.07)
"""

from __future__ import annotations

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_coded.knn import check_same_dimension, rank_classes


def build_index(bank: Tensor, kind: str = "flat", nlist: int = 0, nprobe: int = 8) -> faiss.Index:
    """An inner-product index over the normalised bank: "flat" (exact) or "ivf" (inverted lists)."""
    vectors = _normalised(bank)
    dim = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = nlist or max(1, int(4 * np.sqrt(len(vectors))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = nprobe
    else:
        raise ValueError(f"unknown index {kind!r}; choose flat (exact) or ivf")
    index.add(vectors)
    return index


def faiss_knn_predict(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    index: faiss.Index | None = None,
) -> Tensor:
    """Classes ranked by weighted votes, shape (num_queries, num_classes); column 0 is the top-1."""
    check_same_dimension(bank, queries)
    index = index if index is not None else build_index(bank)
    k = min(k, index.ntotal)
    similarity, neighbours = index.search(_normalised(queries), k)
    neighbours = torch.from_numpy(neighbours)
    # IVF may return fewer than k hits (-1): they vote with weight 0
    missing = neighbours < 0
    labels = bank_labels.cpu()[neighbours.clamp(min=0)]
    similarity = torch.from_numpy(similarity).masked_fill(missing, float("-inf"))
    return rank_classes(similarity, labels, num_classes, temperature)


def _normalised(features: Tensor) -> np.ndarray:
    return np.ascontiguousarray(F.normalize(features.detach().float().cpu(), dim=1).numpy())


def neighbour_recall(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Fraction of the exact k nearest neighbours that an approximate search also returned."""
    if approximate.shape != exact.shape:
        raise ValueError(f"neighbour lists differ in shape: {approximate.shape} vs {exact.shape}")
    found = sum(len(np.intersect1d(a[a >= 0], e)) for a, e in zip(approximate, exact, strict=True))
    return found / exact.size
