"""Few-shot evaluation: stratified seeded draws, and per draw a probe fitted on the drawn rows alone (C
on validation) and a kNN with them as the bank, both against scikit-learn's LogisticRegression and
KNeighborsClassifier; the row's mean and std over the draws."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from ssl_coded.eval.linear_probe import C_GRID, choose_c
from ssl_coded.eval.protocols import Task, fewshot_draws, get_protocol
from ssl_coded.eval.settings import EvalSettings


def noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(size=(n, 6)) + 1.5 * np.eye(3, 6)[labels]
    return x.astype(np.float32), labels


def test_draws_take_the_fraction_of_every_class_seeded():
    labels = np.repeat([0, 1, 2], [200, 50, 3])
    draws = fewshot_draws(labels, fraction=0.1, draws=4, seed=7)
    for rows in draws:
        assert np.bincount(labels[rows]).tolist() == [20, 5, 1]  # rounded, at least one per class
        assert len(set(rows)) == len(rows) and np.all(np.diff(rows) > 0)
    assert len({tuple(rows) for rows in draws}) == 4  # the draws differ
    assert all(np.array_equal(a, b) for a, b in zip(draws, fewshot_draws(labels, 0.1, 4, seed=7), strict=True))
    assert not np.array_equal(draws[0], fewshot_draws(labels, 0.1, 4, seed=8)[0])
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        fewshot_draws(labels, 0.0, 1, 0)


def oracle(rows, train, val, test) -> tuple[float, float]:
    """scikit-learn's probe (C chosen on validation, fitted on the rows alone) and kNN (dino preset)."""
    x, y = train[0][rows], train[1][rows]
    scaler = StandardScaler().fit(x)
    models = {c: LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), y) for c in C_GRID}
    best = choose_c({c: m.score(scaler.transform(val[0]), val[1]) for c, m in models.items()})
    probe = models[best].score(scaler.transform(test[0]), test[1])
    unit = [a / np.linalg.norm(a, axis=1, keepdims=True) for a in (x, test[0])]
    knn = KNeighborsClassifier(n_neighbors=min(20, len(x)), weights=lambda d: np.exp((1 - d**2 / 2) / 0.07))
    return probe, float((knn.fit(unit[0], y).predict(unit[1]) == test[1]).mean())


def test_the_protocol_matches_scikit_learn_draw_by_draw():
    train, val, test = noisy(600, 0), noisy(150, 1), noisy(300, 2)
    settings = EvalSettings(protocols=("fewshot",), fewshot_fractions=(0.05, 0.2), fewshot_draws=3)
    outcome = get_protocol("fewshot")({"train": train, "val": val, "test": test}, Task(3, settings, seed=4))
    for fraction, name in ((0.05, "fewshot5"), (0.2, "fewshot20")):
        figures = np.array([oracle(rows, train, val, test) for rows in fewshot_draws(train[1], fraction, 3, seed=4)])
        probe, knn = figures[:, 0], figures[:, 1]
        assert np.abs(np.array(outcome.extra[name]["linear_top1"]) - probe).max() <= 2 / 300 + 1e-9, name
        assert np.abs(np.array(outcome.extra[name]["knn_top1"]) - knn).max() <= 1e-6, name
        assert outcome.row[f"{name}_knn_top1"] == pytest.approx(knn.mean(), abs=1e-6)
        assert outcome.row[f"{name}_knn_top1_std"] == pytest.approx(knn.std(ddof=1), abs=1e-6)
        assert outcome.row[f"{name}_linear_top1"] == pytest.approx(probe.mean(), abs=2 / 300)
        assert outcome.extra[name]["labelled_rows"] == [round(fraction * 200) * 3] * 3
    assert outcome.row["fewshot5_linear_top1"] < outcome.row["fewshot20_linear_top1"] + 0.02
    assert 0.5 < outcome.row["fewshot20_linear_top1"] < 0.98
