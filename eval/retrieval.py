"""Retrieval metrics from a ranked neighbour list: recall@k and mAP@R (Musgrave et al. 2020).

Example:
    >>> neighbour_labels = gallery_labels[neighbours]        # (num_queries, max_k), best first
    >>> recall_at_k(neighbour_labels, query_labels, (1, 5, 10))
    >>> map_at_r(neighbour_labels, query_labels, gallery_labels)
"""

from __future__ import annotations

import torch
from torch import Tensor


def recall_at_k(neighbour_labels: Tensor, query_labels: Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Fraction of queries with at least one neighbour of their class among the first k."""
    if neighbour_labels.shape[0] != query_labels.shape[0]:
        raise ValueError(f"{neighbour_labels.shape[0]} neighbour lists for {query_labels.shape[0]} queries")
    if max(ks) > neighbour_labels.shape[1]:
        raise ValueError(f"recall@{max(ks)} needs at least {max(ks)} neighbours, got {neighbour_labels.shape[1]}")
    hits = neighbour_labels == query_labels[:, None]
    return {k: float(hits[:, :k].any(dim=1).float().mean()) for k in ks}


def map_at_r(neighbour_labels: Tensor, query_labels: Tensor, gallery_labels: Tensor) -> float:
    """Mean over queries of (1/R) sum_{i<=R} precision@i * relevant(i), R = the query class's
    size in the gallery. The neighbour lists must hold at least max R entries."""
    num_classes = int(max(gallery_labels.max(), query_labels.max())) + 1
    sizes = torch.bincount(gallery_labels, minlength=num_classes)[query_labels]  # R per query
    if int(sizes.max()) > neighbour_labels.shape[1]:
        raise ValueError(f"mAP@R needs {int(sizes.max())} neighbours per query, got {neighbour_labels.shape[1]}")
    if (sizes == 0).any():
        raise ValueError("a query's class is absent from the gallery; mAP@R is undefined for it")
    r = int(sizes.max())
    relevant = (neighbour_labels[:, :r] == query_labels[:, None]).float()
    positions = torch.arange(1, r + 1, dtype=torch.float32)
    within_r = positions[None, :] <= sizes[:, None]
    precision = relevant.cumsum(dim=1) / positions
    return float(((precision * relevant * within_r).sum(dim=1) / sizes).mean())
