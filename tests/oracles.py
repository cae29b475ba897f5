"""Independent references the tests hold the code against (written without the code under test)."""

from __future__ import annotations

import math

import numpy as np


def brute_force_knn(bank, bank_labels, queries, num_classes: int, k: int, temperature: float) -> np.ndarray:
    """Classes ranked by exp(cos / T)-weighted votes of the k most similar bank rows, one query at a time
    in float64 numpy (ties broken by the lower class index, as a stable descending sort does)."""
    bank, queries = np.asarray(bank, dtype=np.float64), np.asarray(queries, dtype=np.float64)
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    ranked = []
    for query in queries:
        similarity = bank @ (query / np.linalg.norm(query))
        nearest = np.argsort(-similarity, kind="stable")[: min(k, len(bank))]
        votes = [0.0] * num_classes
        for row in nearest:
            votes[int(bank_labels[row])] += math.exp(similarity[row] / temperature)
        ranked.append(sorted(range(num_classes), key=lambda c: (-votes[c], c)))
    return np.array(ranked)
