"""Weighted kNN classification on L2-normalised features, in plain torch (the reference).

Votes of the k nearest training features (cosine similarity) are weighted by exp(sim / T), as in
InstDisc and lightly's `knn_predict`. Presets: dino (k=20, T=0.07), instdisc (k=200, T=0.1).

Example:
    >>> predicted = knn_predict(train_x, train_y, test_x, num_classes=10, k=20, temperature=0.07)
    >>> accuracy = (predicted[:, 0] == test_y).float().mean()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PRESETS: dict[str, tuple[int, float]] = {"dino": (20, 0.07), "instdisc": (200, 0.1)}


@torch.no_grad()
def knn_predict(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> Tensor:
    """Classes ranked by weighted votes, shape (num_test, num_classes); column 0 is the top-1."""
    check_same_dimension(train_features, test_features)
    bank = F.normalize(train_features.float(), dim=1)
    k = min(k, bank.shape[0])
    ranked = []
    with torch.autocast(device_type=bank.device.type, enabled=False):  # fp32 even in a bf16 loop
        for start in range(0, test_features.shape[0], chunk_size):
            queries = F.normalize(test_features[start : start + chunk_size].float(), dim=1)
            similarity, index = (queries @ bank.T).topk(k, dim=1)
            ranked.append(rank_classes(similarity, train_labels[index], num_classes, temperature))
    return torch.cat(ranked)


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


def knn_accuracy(
    train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor, preset: str = "dino"
) -> float:
    """Top-1 accuracy of the weighted kNN classifier with a named preset."""
    k, temperature = PRESETS[preset]
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    predicted = knn_predict(train_features, train_labels, test_features, num_classes, k, temperature)
    return float((predicted[:, 0] == test_labels).float().mean())
