"""The kNN sweep against scikit-learn's KNeighborsClassifier with the same weighting: every cell's
validation top-1, the choice (a brute-force argmax over the grid, ties to the smaller k then T) and the
test top-1 at the choice with train + validation as the bank."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from ssl_coded.eval.protocols import knn_sweep

KS, TEMPERATURES = (1, 5, 20, 60), (0.02, 0.1, 0.5)


def overlapping(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four classes of overlapping blobs: the cells of the grid score differently."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    x = rng.normal(size=(n, 12)) + 1.2 * np.eye(4, 12)[labels]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def sklearn_top1(bank, bank_y, queries, query_y, k, temperature) -> float:
    # unit vectors: euclidean neighbours are cosine neighbours, and similarity = 1 - d^2 / 2
    model = KNeighborsClassifier(
        n_neighbors=min(k, len(bank)), weights=lambda d: np.exp((1 - d.astype(np.float64) ** 2 / 2) / temperature)
    )
    return float((model.fit(bank, bank_y).predict(queries) == query_y).mean())


def test_the_sweep_chooses_and_scores_as_scikit_learn():
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
        overlapping(n, s) for n, s in ((400, 0), (150, 1), (200, 2))
    )
    result = knn_sweep(train_x, train_y, val_x, val_y, test_x, test_y, KS, TEMPERATURES)

    expected = {(k, t): sklearn_top1(train_x, train_y, val_x, val_y, k, t) for k in KS for t in TEMPERATURES}
    for cell, top1 in expected.items():
        assert result.val_top1[cell] == pytest.approx(top1, abs=1e-6), cell
    assert len(set(expected.values())) > 3  # the grid matters on this task
    best = max(expected.values())
    assert (result.k, result.temperature) == min(cell for cell, top1 in expected.items() if top1 == best)

    bank, bank_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    assert result.test_top1 == pytest.approx(
        sklearn_top1(bank, bank_y, test_x, test_y, result.k, result.temperature), abs=1e-6
    )
    assert 0.4 < result.test_top1 < 0.95


def test_a_k_beyond_the_bank_votes_with_the_whole_bank_and_a_bad_grid_is_refused():
    (x, y), (qx, qy) = overlapping(30, 3), overlapping(20, 4)
    result = knn_sweep(x, y, qx, qy, qx, qy, ks=(500,), temperatures=(0.1,))
    assert result.val_top1[500, 0.1] == pytest.approx(sklearn_top1(x, y, qx, qy, 30, 0.1), abs=1e-6)
    with pytest.raises(ValueError, match="k >= 1 and T > 0"):
        knn_sweep(x, y, qx, qy, qx, qy, ks=(0,), temperatures=(0.1,))
