"""The closed forms of coded-smoothing's coders, in float64 numpy: Chebyshev points, the Berrut
rational interpolant and the natural cubic smoothing spline as matrices, and the coding pair (E, D).

alpha are Chebyshev points of the first kind (K of them, strictly inside [-1, 1]), beta Chebyshev points
of the second kind (N of them, +-1 included). Both families are linear smoothers, so E (N x K: fit through
(alpha_k, x_k), evaluate at beta_n) and D (K x N: back) are constant for a given (K, N, family, lambdas)
and cached. `ssl_coded.coding` casts them for torch and runs the coded pass.

Example:
    >>> enc, dec = coding_matrices_float64(8, 16, "berrut")
    >>> enc.shape, dec.shape
    ((16, 8), (8, 16))
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

Kind = Literal["spline", "berrut", "mix"]
LambdaUnits = Literal["spacing", "scipy", "mean"]

KINDS: tuple[str, ...] = ("spline", "berrut", "mix")  # mix: the ablation, random mixing (no coding)
LAMBDA_UNITS: tuple[str, ...] = ("spacing", "scipy", "mean")
MIN_BATCH = 2


def chebyshev_first_kind(n: int) -> np.ndarray:
    """The n Chebyshev points of the first kind, cos((2k+1)pi/(2n)), in ascending order.

    Computed as sines of symmetric angles so that the set is exactly symmetric and contains an
    exact 0 for odd n (cos(pi/2) in floating point is 6e-17, not 0).
    """
    if n < 1:
        raise ValueError(f"need at least 1 Chebyshev point, got {n}")
    k = np.arange(n)
    return np.sin(np.pi * (2 * k - (n - 1)) / (2 * n))


def chebyshev_second_kind(n: int) -> np.ndarray:
    """The n Chebyshev points of the second kind, cos(k pi/(n-1)), in ascending order (+-1 included)."""
    if n < 2:
        raise ValueError(f"need at least 2 Chebyshev points of the second kind, got {n}")
    k = np.arange(n)
    return np.sin(np.pi * (2 * k - (n - 1)) / (2 * (n - 1)))


def berrut_matrix(nodes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Matrix M with M @ y = Berrut's rational interpolant through (nodes, y), evaluated at targets.

    r(z) = sum_i w_i y_i / (z - a_i) / sum_i w_i / (z - a_i), w_i = (-1)^i, nodes ascending.
    Rows sum to 1; a target that coincides with a node picks that node's value exactly.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    weights = (-1.0) ** np.arange(len(nodes))
    diff = targets[:, None] - nodes[None, :]
    hit = np.abs(diff) < 1e-14
    diff[hit] = 1.0  # placeholder; rows with a hit are replaced below
    terms = weights / diff
    matrix = terms / terms.sum(axis=1, keepdims=True)
    rows = hit.any(axis=1)
    matrix[rows] = hit[rows].astype(np.float64)
    return np.asarray(matrix, dtype=np.float64)


def smoothing_spline_matrix(knots: np.ndarray, targets: np.ndarray, lam: float) -> np.ndarray:
    """Matrix M with M @ y = the cubic smoothing spline through (knots, y), evaluated at targets.

    The spline minimises sum_i (y_i - g(t_i))^2 + lam * integral g''^2 (SciPy's scaling of lam,
    as in `scipy.interpolate.make_smoothing_spline` with unit weights). The minimiser is a natural
    cubic spline, so beyond the outermost knots it continues linearly; lam = 0 interpolates.

    Built with the Reinsch closed form (Green & Silverman 1994, ch. 2): with node gaps h, the
    n x (n-2) second-difference matrix Q and the (n-2) x (n-2) tridiagonal R, the second
    derivatives at the interior knots are gamma = (R + lam Q^T Q)^-1 Q^T y and the fitted values
    g = y - lam Q gamma. Each target is then evaluated from (g, gamma) on its interval.
    """
    t = np.asarray(knots, dtype=np.float64)
    z = np.asarray(targets, dtype=np.float64)
    n = len(t)
    if n < 2:
        raise ValueError(f"a smoothing spline needs at least 2 knots, got {n}")
    h = np.diff(t)
    if np.any(h <= 0):
        raise ValueError("smoothing-spline knots must be strictly increasing")

    # values (n x n) and second derivatives at every knot (n x n, zero at the ends: natural)
    values = np.eye(n)
    second = np.zeros((n, n))
    if n > 2:
        q = np.zeros((n, n - 2))
        idx = np.arange(n - 2)
        q[idx, idx] = 1.0 / h[:-1]
        q[idx + 1, idx] = -1.0 / h[:-1] - 1.0 / h[1:]
        q[idx + 2, idx] = 1.0 / h[1:]
        r = np.diag((h[:-1] + h[1:]) / 3.0)
        r += np.diag(h[1:-1] / 6.0, 1) + np.diag(h[1:-1] / 6.0, -1)
        gamma = np.linalg.solve(r + lam * q.T @ q, q.T)
        values = values - lam * q @ gamma
        second[1:-1] = gamma

    matrix = np.empty((len(z), n))
    interval = np.clip(np.searchsorted(t, z, side="right") - 1, 0, n - 2)
    left, right = t[interval], t[interval + 1]
    width = h[interval]
    inside = (z >= t[0]) & (z <= t[-1])

    # cubic on [t_i, t_i+1] from values and second derivatives at both ends
    a = (right - z) / width
    b = (z - left) / width
    cubic = (
        a[:, None] * values[interval]
        + b[:, None] * values[interval + 1]
        + ((a**3 - a) * width**2 / 6.0)[:, None] * second[interval]
        + ((b**3 - b) * width**2 / 6.0)[:, None] * second[interval + 1]
    )
    matrix[inside] = cubic[inside]

    # linear continuation with the end value and end slope (natural spline: g'' = 0 there)
    slope_lo = (values[1] - values[0]) / h[0] - h[0] / 6.0 * (2 * second[0] + second[1])
    slope_hi = (values[-1] - values[-2]) / h[-1] + h[-1] / 6.0 * (second[-2] + 2 * second[-1])
    below, above = z < t[0], z > t[-1]
    matrix[below] = values[0] + (z[below] - t[0])[:, None] * slope_lo
    matrix[above] = values[-1] + (z[above] - t[-1])[:, None] * slope_hi
    return matrix


def scipy_lambda(lam: float, knots: np.ndarray, units: LambdaUnits) -> float:
    """Convert a smoothing level to SciPy's scaling of the spline's lambda.

    Args:
        lam: the smoothing level in `units`.
        knots: the knots the spline is fitted at.
        units: "scipy" takes lam as is. "mean" is the 1/n convention (data term averaged over
            the n knots, as in the coded-computing papers): SciPy's lambda is n * lam.
            "spacing" (the default everywhere) measures lambda in units of the mean knot spacing
            cubed, lambda_scipy = lam * spacing^3: lambda has the dimension length^3, so this
            makes the same lam smooth over the same number of neighbours at any batch size.
    """
    if units == "scipy":
        return float(lam)
    if units == "mean":
        return float(lam) * len(knots)
    if units == "spacing":
        spacing = float(knots[-1] - knots[0]) / (len(knots) - 1)
        return float(lam) * spacing**3
    raise ValueError(f"unknown lambda units {units!r}; choose one of {LAMBDA_UNITS}")


@functools.lru_cache(maxsize=64)
def coding_matrices_float64(
    k: int,
    n: int,
    kind: Kind = "spline",
    lambda_enc: float = 0.0,
    lambda_dec: float = 0.0,
    lambda_units: LambdaUnits = "spacing",
) -> tuple[np.ndarray, np.ndarray]:
    """Encoder E (n x k) and decoder D (k x n) in float64, cached per argument set.

    The returned arrays are shared by the cache: treat them as read-only.
    """
    if k < MIN_BATCH:
        raise ValueError(
            f"a batch of {k} is too small to code: coded-smoothing needs at least {MIN_BATCH} "
            "samples; use a larger batch (or skip small batches)"
        )
    if n < 2:
        raise ValueError(f"need at least 2 coded samples, got N={n}; raise the coded ratio or N")
    alpha, beta = chebyshev_first_kind(k), chebyshev_second_kind(n)
    if kind == "berrut":
        enc, dec = berrut_matrix(alpha, beta), berrut_matrix(beta, alpha)
    elif kind == "spline":
        enc = smoothing_spline_matrix(alpha, beta, scipy_lambda(lambda_enc, alpha, lambda_units))
        dec = smoothing_spline_matrix(beta, alpha, scipy_lambda(lambda_dec, beta, lambda_units))
    else:
        raise ValueError(f"closed forms exist for spline and berrut, not {kind!r}")
    enc.flags.writeable = False
    dec.flags.writeable = False
    return enc, dec
