import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from ssl_coded.eval.linear_probe import linear_probe


def separable(n, seed, classes=4, dim=6):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centers = np.eye(classes, dim) * 6
    return centers[labels] + rng.normal(size=(n, dim)), labels


def test_probe_recovers_linearly_separable_labels():
    result = linear_probe(*separable(400, 0), *separable(100, 1), *separable(200, 2))
    assert result.test_top1 == 1.0 and result.test_top5 == 1.0
    assert result.best_c in result.val_top1 and np.trace(np.array(result.confusion)) == 200
    assert result.per_class == [1.0, 1.0, 1.0, 1.0]


def test_probe_matches_scikit_learn_with_the_chosen_c():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 10))
    y = (x[:, 0] + 0.8 * x[:, 1] + rng.normal(scale=1.0, size=600) > 0).astype(int) + 2 * (x[:, 2] > 0)
    result = linear_probe(x[:300], y[:300], x[300:400], y[300:400], x[400:], y[400:])
    joint_x, joint_y = x[:400], y[:400]
    scaler = StandardScaler().fit(joint_x)
    reference = LogisticRegression(C=result.best_c, max_iter=1000).fit(scaler.transform(joint_x), joint_y)
    assert abs(result.test_top1 - reference.score(scaler.transform(x[400:]), y[400:])) < 1e-12
    assert 0.5 < result.test_top1 < 1.0  # a noisy task: the check above is not trivially 1 = 1


def test_probe_refuses_bad_input():
    x, y = separable(50, 0)
    with pytest.raises(ValueError, match="the val split is empty"):
        linear_probe(x, y, x[:0], y[:0], x, y)
    with pytest.raises(ValueError, match="differ in dimension"):
        linear_probe(x, y, x[:, :3], y, x, y)
    with pytest.raises(ValueError, match="test: 50 features but 10 labels"):
        linear_probe(x, y, x, y, x, y[:10])


def test_sgd_probe_recovers_separable_labels_and_tracks_lbfgs():
    from ssl_coded.eval.linear_probe import sgd_probe

    assert sgd_probe(*separable(400, 0), *separable(200, 2), epochs=10) == 1.0
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1200, 10))
    y = (x[:, 0] + 0.8 * x[:, 1] + rng.normal(size=1200) > 0).astype(int)
    lbfgs = linear_probe(x[:800], y[:800], x[800:1000], y[800:1000], x[1000:], y[1000:]).test_top1
    assert abs(sgd_probe(x[:1000], y[:1000], x[1000:], y[1000:]) - lbfgs) <= 0.03
