"""Weighted kNN classification on L2-normalised features: the one kNN path of the project.

The pretraining run's online monitor (validation kNN each epoch), its summary (test kNN of the best
checkpoint) and `ssl-coded eval` all search with `KnnBank` and vote with `rank_classes`, so the same
features give the same numbers everywhere. The search is exact: `ExactIndex` (a certified bf16
product re-ranked in fp32 on CPUs where bf16 products are measured to be clearly faster than fp32
ones, `ssl_coded.search.calibration`; the fp32 product elsewhere and on GPUs). Votes of the k nearest
bank rows (cosine similarity) are weighted by exp(sim / T), as in InstDisc and lightly's
`knn_predict`. Presets: dino (k=20, T=0.07), instdisc (k=200, T=0.1).

Example:
    >>> scores = knn_metrics(train_x, train_y, test_x, test_y, num_classes=10)
    >>> scores["knn_dino_top1"], scores["knn_instdisc_top5"]
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssl_coded.notices import warn_once
from ssl_coded.search import calibration
from ssl_coded.search.exact_search import ExactIndex, SearchStats

PRESETS: dict[str, tuple[int, float]] = {"dino": (20, 0.07), "instdisc": (200, 0.1)}


class KnnBank:
    """Features (and their labels) prepared once for exact cosine top-k searches.

    Args:
        features: (num_bank, dim) float features, on any device.
        labels: (num_bank,) int64 class labels (needed by `predict`).
        bf16: the certified bf16 product on a CPU (default: where this machine's calibration chose
            it, `ssl_coded.search.calibration.knn_backend()`; never measured for a bank off the CPU).
    """

    def __init__(self, features: Tensor, labels: Tensor | None = None, bf16: bool | None = None) -> None:
        if bf16 is None:
            bf16 = features.device.type == "cpu" and calibration.knn_backend() == "bf16"
        self.index = ExactIndex(features, bf16=bf16)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.index)

    def search(self, queries: Tensor, k: int, stats: SearchStats | None = None) -> tuple[Tensor, Tensor]:
        """(similarity float32, bank indices int64), each (num_queries, min(k, bank size)), best first."""
        if k < 1:
            raise ValueError(f"kNN needs k >= 1 neighbours, got k={k}")
        check_same_dimension(self.index.bank32, queries)
        return self.index.search(queries.to(self.index.bank32.device), k, stats=stats)

    def predict(self, queries: Tensor, num_classes: int, k: int = 20, temperature: float = 0.07) -> Tensor:
        """Classes ranked by weighted votes, (num_queries, num_classes); column 0 is the top-1."""
        if self.labels is None:
            raise ValueError("this KnnBank has no labels; build it with KnnBank(features, labels)")
        warn_if_k_exceeds_bank(k, len(self))
        similarity, neighbours = self.search(queries, k)
        return rank_classes(similarity, self.labels.to(neighbours.device)[neighbours], num_classes, temperature)


@torch.no_grad()
def knn_predict(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
) -> Tensor:
    """Classes ranked by weighted votes, shape (num_test, num_classes); column 0 is the top-1."""
    return KnnBank(train_features, train_labels).predict(test_features, num_classes, k, temperature)


@torch.no_grad()
def knn_metrics(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    query_labels: Tensor,
    num_classes: int,
    neighbours: tuple[Tensor, Tensor] | None = None,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy of both presets (`knn_<preset>_top1`, `knn_<preset>_top5`) from one search.

    Args:
        bank, bank_labels: the train features and labels.
        queries, query_labels: the features and labels to classify.
        num_classes: number of classes.
        neighbours: (similarity, indices) of an earlier search of at least the largest preset's k
            (e.g. by an approximate index); searched exactly here when None.
    """
    if neighbours is None:
        neighbours = KnnBank(bank).search(queries, max(k for k, _ in PRESETS.values()))
    for k, _ in PRESETS.values():
        warn_if_k_exceeds_bank(k, len(bank))
    similarity, index = neighbours
    labels = bank_labels.to(index.device)[index.clamp(min=0)]  # a missing hit (-1) votes with exp(-inf) = 0
    query_labels = query_labels.to(index.device)
    out = {}
    for name, (k, temperature) in PRESETS.items():
        ranked = rank_classes(similarity[:, :k], labels[:, :k], num_classes, temperature)
        out[f"knn_{name}_top1"] = float((ranked[:, 0] == query_labels).float().mean())
        out[f"knn_{name}_top5"] = float((ranked[:, :5] == query_labels[:, None]).any(dim=1).float().mean())
    return out


def warn_if_k_exceeds_bank(k: int, bank_size: int) -> None:
    if k > bank_size:
        warn_once(
            f"kNN: k={k} is larger than the bank ({bank_size} rows), so every row votes; use more data or a smaller k"
        )


def check_same_dimension(bank: Tensor, queries: Tensor) -> None:
    if bank.shape[1] != queries.shape[1]:
        raise ValueError(
            f"bank features have dimension {bank.shape[1]} but queries {queries.shape[1]}; "
            "extract both with the same encoder"
        )


def rank_classes(similarity: Tensor, neighbour_labels: Tensor, num_classes: int, temperature: float) -> Tensor:
    """Classes ranked by the votes of the neighbours, each weighted exp(similarity / T)."""
    votes = torch.zeros(similarity.shape[0], num_classes, device=similarity.device)
    votes.scatter_add_(1, neighbour_labels, torch.exp(similarity.float() / temperature))
    return votes.argsort(dim=1, descending=True, stable=True)
