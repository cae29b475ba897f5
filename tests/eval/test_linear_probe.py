import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from ssl_coded.eval.linear_probe import C_GRID, LogisticPath, fit_logistic_regression, linear_probe, sgd_probe


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
    assert sgd_probe(*separable(400, 0), *separable(200, 2), epochs=10) == 1.0
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1200, 10))
    y = (x[:, 0] + 0.8 * x[:, 1] + rng.normal(size=1200) > 0).astype(int)
    lbfgs = linear_probe(x[:800], y[:800], x[800:1000], y[800:1000], x[1000:], y[1000:]).test_top1
    assert abs(sgd_probe(x[:1000], y[:1000], x[1000:], y[1000:]) - lbfgs) <= 0.03


def noisy(n, seed, classes=4, dim=10):
    """Overlapping classes: a probe's accuracy and its choice of C are not trivial here."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centers = np.random.default_rng(100).normal(size=(classes, dim))
    return centers[labels] + 1.5 * rng.normal(size=(n, dim)), labels


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("c", [1e-2, 1.0, 100.0])
def test_torch_solver_reaches_scikit_learns_optimum(classes, c):
    x, y = noisy(300, 0, classes=classes, dim=8)
    x = StandardScaler().fit_transform(x)
    reference = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(x, y)
    fit = fit_logistic_regression(torch.from_numpy(x), y, c, tol=1e-9, max_iter=5000)
    assert fit.converged
    probabilities = torch.softmax(fit.logits(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(probabilities, reference.predict_proba(x), atol=1e-6)
    coef = fit.coef.numpy()
    if classes == 2:  # scikit-learn's one binomial vector is the difference of the two softmax columns
        np.testing.assert_allclose(coef[1] - coef[0], reference.coef_[0], rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(coef, reference.coef_, rtol=1e-5, atol=1e-6)


def test_float32_solver_at_the_default_tolerance_predicts_as_scikit_learn():
    x, y = noisy(600, 1)
    x = StandardScaler().fit_transform(x)
    reference = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    fit = fit_logistic_regression(torch.from_numpy(x).float(), y, 1.0)
    probabilities = torch.softmax(fit.logits(torch.from_numpy(x).float()), dim=1).numpy()
    assert np.abs(probabilities - reference.predict_proba(x)).max() < 1e-3
    assert (probabilities.argmax(1) == reference.predict(x)).mean() > 0.99


def test_probe_chooses_c_and_scores_as_the_scikit_learn_path():
    splits = (*noisy(500, 2), *noisy(300, 3), *noisy(400, 4))
    fast = linear_probe(*splits)
    reference = linear_probe(*splits, solver="sklearn")
    assert fast.best_c == reference.best_c
    for c in C_GRID:  # at most one validation sample predicted differently per C
        assert abs(fast.val_top1[c] - reference.val_top1[c]) <= 1 / 300 + 1e-12, c
    assert abs(fast.test_top1 - reference.test_top1) <= 1 / 400 + 1e-12
    assert abs(fast.test_top5 - reference.test_top5) <= 1 / 400 + 1e-12
    assert 0.5 < fast.test_top1 < 0.95 and len(set(fast.val_top1.values())) > 1  # not a trivial task
    assert np.abs(np.array(fast.confusion) - np.array(reference.confusion)).sum() <= 2


def test_warm_start_along_the_path_reaches_the_cold_optimum():
    x, y = noisy(400, 5)
    x = torch.from_numpy(StandardScaler().fit_transform(x))
    # at C=100 the flattest direction has curvature 1/(C n): a gradient test pins the weights only to tol C n
    path = LogisticPath(x, y)
    warm = [path.fit(c, tol=1e-8, max_iter=5000) for c in C_GRID][-1]
    cold = fit_logistic_regression(x, y, C_GRID[-1], tol=1e-8, max_iter=5000)
    unpreconditioned = LogisticPath(x, y, precondition=False).fit(C_GRID[-1], tol=1e-8, max_iter=5000)
    for fit in (warm, unpreconditioned):
        np.testing.assert_allclose(fit.coef.numpy(), cold.coef.numpy(), atol=1e-5)
        np.testing.assert_allclose(torch.softmax(fit.logits(x), 1), torch.softmax(cold.logits(x), 1), atol=1e-6)
    # the path's point, at the default tolerance: each fit starts close to its optimum
    path = LogisticPath(x, y)
    assert [path.fit(c) for c in C_GRID][-1].iterations < fit_logistic_regression(x, y, C_GRID[-1]).iterations / 2


def test_probe_refits_from_the_chosen_solution_mapped_to_the_joint_standardisation():
    # train and validation on different scales: the joint standardisation differs much from train's
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = noisy(400, 6), noisy(200, 7), noisy(300, 8)
    val_x = 3.0 * val_x + 2.0
    result = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, tol=1e-7, dtype=torch.float64)
    joint_x, joint_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    scaler = StandardScaler().fit(joint_x)
    reference = LogisticRegression(C=result.best_c, tol=1e-10, max_iter=10_000).fit(scaler.transform(joint_x), joint_y)
    assert result.test_top1 == reference.score(scaler.transform(test_x), test_y)


def test_tensors_and_arrays_give_the_same_probe():
    splits = (*noisy(300, 9), *noisy(100, 10), *noisy(200, 11))
    from_arrays = linear_probe(*splits)
    from_tensors = linear_probe(*(torch.from_numpy(a) for a in splits))
    assert from_tensors == from_arrays
    assert linear_probe(*splits, device="cpu") == from_arrays


def test_labels_need_not_be_contiguous():
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = noisy(300, 12), noisy(100, 13), noisy(200, 14)
    names = np.array([3, 7, 8, 20])
    result = linear_probe(train_x, names[train_y], val_x, names[val_y], test_x, names[test_y])
    reference = linear_probe(train_x, names[train_y], val_x, names[val_y], test_x, names[test_y], solver="sklearn")
    assert result.best_c == reference.best_c and abs(result.test_top1 - reference.test_top1) <= 1 / 200 + 1e-12
    assert len(result.per_class) == 4 and np.array(result.confusion).sum() == 200


def test_probe_refuses_an_unknown_solver_and_an_empty_grid():
    x, y = separable(50, 0)
    with pytest.raises(ValueError, match="unknown solver 'newton'"):
        linear_probe(x, y, x, y, x, y, solver="newton")
    with pytest.raises(ValueError, match="c_grid is empty"):
        linear_probe(x, y, x, y, x, y, c_grid=())


def test_sgd_probe_is_seeded_and_takes_tensors():
    x, y = noisy(600, 15)
    test_x, test_y = noisy(300, 16)
    first = sgd_probe(x, y, test_x, test_y, epochs=3, seed=1)
    assert sgd_probe(x, y, test_x, test_y, epochs=3, seed=1) == first
    assert sgd_probe(*(torch.from_numpy(a) for a in (x, y, test_x, test_y)), epochs=3, seed=1) == first
    assert 0.4 < first < 1.0
