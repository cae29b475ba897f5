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


def chebyshev_points(n: int, kind: int) -> np.ndarray:
    """Ascending Chebyshev points: first kind cos((2k+1)pi/(2n)), second kind cos(k pi/(n-1))."""
    k = np.arange(n)
    return np.sort(np.cos((2 * k + 1) * np.pi / (2 * n)) if kind == 1 else np.cos(k * np.pi / (n - 1)))


def berrut_by_hand(nodes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Berrut's rational interpolant r(z) = sum_i (-1)^i y_i / (z - a_i) / sum_i (-1)^i / (z - a_i), as a
    matrix, entry by entry; a target on a node takes that node's value."""
    matrix = np.zeros((len(targets), len(nodes)))
    for row, z in enumerate(targets):
        if np.any(np.isclose(z, nodes, rtol=0, atol=1e-14)):
            matrix[row, np.argmin(np.abs(z - nodes))] = 1.0
            continue
        terms = [(-1.0) ** i / (z - a) for i, a in enumerate(nodes)]
        matrix[row] = np.array(terms) / sum(terms)
    return matrix


def spline_by_scipy(knots: np.ndarray, targets: np.ndarray, lam_spacing: float) -> np.ndarray:
    """The natural cubic smoothing spline as a matrix, one unit vector at a time with SciPy's
    `make_smoothing_spline` (lambda given in units of the mean knot spacing cubed); beyond the outer
    knots the natural spline continues linearly (SciPy's BSpline would extrapolate the cubic)."""
    from scipy.interpolate import make_smoothing_spline

    lam = lam_spacing * ((knots[-1] - knots[0]) / (len(knots) - 1)) ** 3
    columns = []
    for unit in np.eye(len(knots)):
        spline = make_smoothing_spline(knots, unit, lam=lam)
        slope = spline.derivative()
        values = spline(np.clip(targets, knots[0], knots[-1]))
        low, high = targets < knots[0], targets > knots[-1]
        values[low] += slope(knots[0]) * (targets[low] - knots[0])
        values[high] += slope(knots[-1]) * (targets[high] - knots[-1])
        columns.append(values)
    return np.stack(columns, axis=1)


def coded_pass_by_hand(fn, x, kind: str = "spline", num_coded: int | None = None, coded_ratio: float = 2.0,
                       lambda_enc: float = 1e-2, lambda_dec: float = 1e-2):  # fmt: skip
    """D @ fn(E @ x) built from the definitions: Chebyshev points, the coders above, and fn run on one
    coded sample at a time (an explicit loop over the coded batch), decoded in float64."""
    import torch

    k = x.shape[0]
    n = num_coded or max(2, int(np.floor(coded_ratio * k + 0.5)))
    alpha, beta = chebyshev_points(k, 1), chebyshev_points(n, 2)
    if kind == "berrut":
        enc, dec = berrut_by_hand(alpha, beta), berrut_by_hand(beta, alpha)
    else:
        enc, dec = spline_by_scipy(alpha, beta, lambda_enc), spline_by_scipy(beta, alpha, lambda_dec)
    flat = x.detach().reshape(k, -1).double().numpy()
    outputs = []
    for row in enc:
        coded = torch.from_numpy(row @ flat).reshape(1, *x.shape[1:]).to(x.dtype)
        outputs.append(fn(coded)[0].detach().double())
    stacked = torch.stack(outputs)
    return (torch.from_numpy(dec) @ stacked.flatten(1)).reshape(k, *stacked.shape[1:])
