"""Weighted kNN on L2-normalised features: exact search (certified bf16 or FAISS flat), or FAISS IVF.

`KnnIndex(bank, kind)` prepares a bank once; `search(queries, k)` returns cosine similarities and
bank indices, best first. Kinds:
- "exact" (default): `exact_search`, a bf16 product with an fp32 re-rank and a certificate, on
  CPUs with native bf16; FAISS IndexFlatIP elsewhere. Both return the fp32 brute-force answer.
- "flat": FAISS IndexFlatIP (exact, fp32).
- "ivf": FAISS IndexIVFFlat, nlist 4 sqrt(N), nprobe 32 (approximate; for large banks with cluster
  structure; `ssl-coded eval --index ivf` reports its recall and top-1 agreement against exact).
The votes are those of `ssl_coded.knn` (the torch reference): the same neighbours give the same
ranking.

Example:
    >>> ranked = faiss_knn_predict(bank, bank_labels, queries, num_classes=10, k=20, temperature=0.07)
"""

from __future__ import annotations

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from ssl_coded.eval.exact_search import ExactIndex, SearchStats
from torch import Tensor

from ssl_coded.hardware import native_bf16
from ssl_coded.knn import check_same_dimension, rank_classes

INDEX_KINDS = ("exact", "flat", "ivf")


class KnnIndex:
    """A bank of features prepared for inner-product search on their normalised rows."""

    def __init__(self, bank: Tensor, kind: str = "exact", nlist: int = 0, nprobe: int = 32) -> None:
        if kind not in INDEX_KINDS:
            raise ValueError(f"unknown index {kind!r}; choose from {', '.join(INDEX_KINDS)}")
        self.bank = bank.detach().float().cpu()
        self.kind = kind
        self.exact = ExactIndex(self.bank) if kind == "exact" and native_bf16() else None
        self.faiss_index = None
        if self.exact is None:
            self.faiss_index = _faiss_index(_normalised(self.bank), "ivf" if kind == "ivf" else "flat", nlist, nprobe)

    def __len__(self) -> int:
        return len(self.bank)

    def search(self, queries: Tensor, k: int, stats: SearchStats | None = None) -> tuple[Tensor, Tensor]:
        """(similarity float32, bank indices int64), each (num_queries, min(k, bank size)), best first.

        An IVF index may find fewer than k neighbours: those slots hold index -1 and similarity -inf.
        `stats` counts the exact search's fp32 fallbacks.
        """
        check_same_dimension(self.bank, queries)
        k = min(k, len(self.bank))
        if self.exact is not None:
            return self.exact.search(queries.detach().cpu(), k, stats=stats)
        similarity, neighbours = (torch.from_numpy(a) for a in self.faiss_index.search(_normalised(queries), k))
        return similarity.masked_fill(neighbours < 0, float("-inf")), neighbours


def _faiss_index(vectors: np.ndarray, kind: str, nlist: int, nprobe: int) -> faiss.Index:
    dim = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = nlist or max(1, int(4 * np.sqrt(len(vectors))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = nprobe
    index.add(vectors)
    return index


def faiss_knn_predict(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    index: KnnIndex | None = None,
) -> Tensor:
    """Classes ranked by weighted votes, shape (num_queries, num_classes); column 0 is the top-1."""
    index = index if index is not None else KnnIndex(bank)
    similarity, neighbours = index.search(queries, k)
    labels = bank_labels.cpu()[neighbours.clamp(min=0)]  # missing IVF hits vote with weight exp(-inf) = 0
    return rank_classes(similarity, labels, num_classes, temperature)


def _normalised(features: Tensor) -> np.ndarray:
    return np.ascontiguousarray(F.normalize(features.detach().float().cpu(), dim=1).numpy())


def neighbour_recall(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Fraction of the exact k nearest neighbours that an approximate search also returned."""
    if approximate.shape != exact.shape:
        raise ValueError(f"neighbour lists differ in shape: {approximate.shape} vs {exact.shape}")
    found = sum(len(np.intersect1d(a[a >= 0], e)) for a, e in zip(approximate, exact, strict=True))
    return found / exact.size
