"""Approximate and FAISS searches for `ssl-coded eval --index flat|ivf`, beside the exact default.

`make_index(bank, kind)` returns an object with `search(queries, k) -> (similarity, indices)`:
- "exact" (default): `ssl_coded.search.knn.KnnBank`, the project's one exact search (also behind the
  pretraining summary and the online monitor).
- "flat": FAISS IndexFlatIP (exact, fp32).
- "ivf": FAISS IndexIVFFlat, nlist 4 sqrt(N), nprobe 32 (approximate; for large banks with cluster
  structure; `ssl-coded eval --index ivf` reports its recall and top-1 agreement against exact).
The votes are `ssl_coded.search.knn`'s: the same neighbours give the same ranking.

Example:
    >>> similarity, neighbours = make_index(bank, "ivf").search(queries, k=20)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_coded.extras import require
from ssl_coded.search.knn import KnnBank, check_same_dimension

INDEX_KINDS = ("exact", "flat", "ivf")


class FaissIndex:
    """A bank of features in a FAISS inner-product index over their normalised rows."""

    def __init__(self, bank: Tensor, kind: str = "flat", nlist: int = 0, nprobe: int = 32) -> None:
        faiss = require("faiss", "eval")
        self.bank = bank.detach().float().cpu()
        vectors = _normalised(self.bank)
        dim = vectors.shape[1]
        if kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
        else:
            nlist = nlist or max(1, int(4 * np.sqrt(len(vectors))))
            self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.train(vectors)
            self.index.nprobe = nprobe
        self.index.add(vectors)

    def __len__(self) -> int:
        return len(self.bank)

    def search(self, queries: Tensor, k: int, stats: Any = None) -> tuple[Tensor, Tensor]:
        """(similarity float32, bank indices int64), each (num_queries, min(k, bank size)), best first.

        An IVF index may find fewer than k neighbours: those slots hold index -1 and similarity -inf.
        """
        check_same_dimension(self.bank, queries)
        k = min(k, len(self.bank))
        similarity, neighbours = (torch.from_numpy(a) for a in self.index.search(_normalised(queries), k))
        return similarity.masked_fill(neighbours < 0, float("-inf")), neighbours


def make_index(bank: Tensor, kind: str = "exact") -> KnnBank | FaissIndex:
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index {kind!r}; choose from {', '.join(INDEX_KINDS)}")
    return KnnBank(bank) if kind == "exact" else FaissIndex(bank, kind)


def _normalised(features: Tensor) -> np.ndarray:
    return np.ascontiguousarray(F.normalize(features.detach().float().cpu(), dim=1).numpy())


def neighbour_recall(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Fraction of the exact k nearest neighbours that an approximate search also returned."""
    if approximate.shape != exact.shape:
        raise ValueError(f"neighbour lists differ in shape: {approximate.shape} vs {exact.shape}")
    found = sum(len(np.intersect1d(a[a >= 0], e)) for a, e in zip(approximate, exact, strict=True))
    return found / exact.size
