"""Linear probe on frozen features: multinomial logistic regression, the inverse regularisation C chosen
on the validation split, refit on train + validation, scored once on test; and the SGD probe.

The default solver is `ssl_coded.eval.logistic`'s L-BFGS in torch on the features' device, walked along
the grid of C from the strongest regularisation to the weakest (each fit starting from the previous one);
the refit on train + validation starts from the chosen solution, mapped onto the joint standardisation.
`solver="sklearn"` keeps the previous path: one scikit-learn `LogisticRegression(solver="lbfgs")` per
C, from zero each time. Both choose C (`choose_c`) and score (`_score`) the same way.

Example:
    >>> result = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y)
    >>> result.test_top1, result.best_c
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from ssl_coded.eval.features import as_tensor
from ssl_coded.eval.logistic import (
    LogisticFit,
    LogisticPath,
    Preconditioner,
    default_device,
    fit_logistic_regression,
    labels_of,
    standardiser,
)
from ssl_coded.eval.sgd_probe import sgd_probe
from torch import Tensor

__all__ = [
    "C_GRID",
    "LogisticFit",
    "LogisticPath",
    "ProbeResult",
    "fit_logistic_regression",
    "linear_probe",
    "sgd_probe",
]

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
SOLVERS = ("torch", "sklearn")

ArrayLike = Any  # numpy arrays, torch tensors or anything np.asarray reads


@dataclass
class ProbeResult:
    """The chosen C, validation top-1 per C, and the refit model's test scores (per class and confusion
    matrix with rows = true class, columns = predicted, classes in sorted order)."""

    best_c: float
    val_top1: dict[float, float]
    test_top1: float
    test_top5: float
    per_class: list[float] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    iterations: dict[str, int] = field(default_factory=dict)  # L-BFGS iterations per fit ("C=...", "refit")
    # the scored model, on features standardised by (features - mean) / scale (the torch solver's); not
    # compared: two results are equal when their choices and scores are
    model: LogisticFit | None = field(default=None, compare=False, repr=False)
    mean: Tensor | None = field(default=None, compare=False, repr=False)
    scale: Tensor | None = field(default=None, compare=False, repr=False)


def _check_splits(splits: dict[str, tuple[ArrayLike, ArrayLike]]) -> None:
    for name, (x, y) in splits.items():
        if len(x) == 0:
            raise ValueError(f"the {name} split is empty; a linear probe needs train, validation and test features")
        if len(x) != len(y):
            raise ValueError(f"{name}: {len(x)} features but {len(y)} labels")
    dims = [x.shape[1] for x, _ in splits.values()]
    if len(set(dims)) != 1:
        raise ValueError("train, validation and test features differ in dimension; extract them with one encoder")


def choose_c(val_top1: dict[float, float]) -> float:
    """The C of the best validation top-1; ties go to the stronger regularisation (the smaller C)."""
    return max(val_top1, key=lambda c: (val_top1[c], -c))


def _score(
    logits: np.ndarray, model_classes: np.ndarray, joint_y: np.ndarray, test_y: np.ndarray
) -> tuple[float, float, list[float], list[list[int]]]:
    """Top-1, top-5, per-class top-1 and the confusion matrix of test predictions."""
    ranked = model_classes[np.argsort(-logits, axis=1, kind="stable")]
    top1 = ranked[:, 0] == test_y
    top5 = (ranked[:, :5] == test_y[:, None]).any(axis=1)
    classes = np.unique(np.concatenate([joint_y, test_y]))
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (np.searchsorted(classes, test_y), np.searchsorted(classes, ranked[:, 0])), 1)
    per_class = [float(top1[test_y == c].mean()) if (test_y == c).any() else float("nan") for c in classes]
    return float(top1.mean()), float(top5.mean()), per_class, confusion.tolist()


def linear_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    val_x: ArrayLike,
    val_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    c_grid: tuple[float, ...] = C_GRID,
    max_iter: int = 1000,
    *,
    solver: str = "torch",
    tol: float = 1e-4,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    refit: bool = True,
) -> ProbeResult:
    """Choose C on validation, refit on train + validation, score on test.

    Features are standardised with the statistics of the split(s) each model is fitted on. Ties in
    validation top-1 go to the stronger regularisation.

    Args:
        train_x, val_x, test_x: features (n, dim), numpy arrays or torch tensors.
        train_y, val_y, test_y: integer labels.
        c_grid: inverse L2 strengths to choose from (scikit-learn's C).
        max_iter: L-BFGS iterations per fit at most.
        solver: "torch" (L-BFGS in torch along the path of C) or "sklearn" (one scikit-learn fit per C).
        tol: stop when the largest gradient entry of the mean objective is below it (scikit-learn's tol).
        device: where the torch solver runs; default the features' device, else the CPU.
        dtype: the torch solver's precision.
        refit: refit on train + validation (False: score the model fitted on train alone, as a few-shot
            probe must, its labels being only those of train).

    Example:
        >>> result = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, device="cuda")
        >>> result.best_c, result.val_top1[result.best_c], result.test_top1
    """
    _check_splits({"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)})
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose from {', '.join(SOLVERS)}")
    if not c_grid:
        raise ValueError("c_grid is empty")
    if solver == "sklearn":
        if not refit:
            raise ValueError("refit=False is the torch solver's; use solver='torch'")
        return _sklearn_probe(train_x, train_y, val_x, val_y, test_x, test_y, c_grid, max_iter)
    device = torch.device(device) if device is not None else default_device(train_x, val_x, test_x)
    train_t, val_t, test_t = (as_tensor(a, device, dtype) for a in (train_x, val_x, test_x))
    train_l, val_l, test_l = (labels_of(a) for a in (train_y, val_y, test_y))

    mean, scale = standardiser(train_t)
    train_s, val_s = (train_t - mean) / scale, (val_t - mean) / scale
    path = LogisticPath(train_s, train_l)
    fits: dict[float, LogisticFit] = {}
    val_top1: dict[float, float] = {}
    iterations: dict[str, int] = {}
    for c in sorted(c_grid):  # strongest regularisation first: each solution starts the next
        fit = fits[c] = path.fit(c, tol=tol, max_iter=max_iter)
        predicted = fit.classes[fit.logits(val_s).argmax(1).cpu().numpy()]
        val_top1[c] = float((predicted == val_l).mean())
        iterations[f"C={c:g}"] = fit.iterations
    val_top1 = {c: val_top1[c] for c in c_grid}
    best_c = choose_c(val_top1)
    if not refit:
        logits = fits[best_c].logits((test_t - mean) / scale).cpu().numpy()
        top1, top5, per_class, confusion = _score(logits, fits[best_c].classes, train_l, test_l)
        return ProbeResult(best_c, val_top1, top1, top5, per_class, confusion, iterations, fits[best_c], mean, scale)

    joint_t, joint_l = torch.cat([train_t, val_t]), np.concatenate([train_l, val_l])
    preconditioner = path.objective.preconditioner
    del train_s, val_s, path
    joint_mean, joint_scale = standardiser(joint_t)
    refit = LogisticPath((joint_t - joint_mean) / joint_scale, joint_l, precondition=False)
    del joint_t
    chosen, init = fits[best_c], None
    if np.array_equal(chosen.classes, refit.classes):
        # the train fit's correlations serve the joint features as well: no second eigendecomposition
        refit.objective.preconditioner = preconditioner
        # the chosen model's linear function, re-expressed on the joint standardisation:
        # (x - m2) / s2 @ W2 + b2 == (x - m1) / s1 @ W1 + b1
        coef = chosen.coef * (joint_scale / scale)
        intercept = chosen.intercept + chosen.coef @ ((joint_mean - mean) / scale)
        init = LogisticFit(coef, intercept, chosen.classes, 0, False)
    elif preconditioner is not None:
        refit.objective.preconditioner = Preconditioner(refit.objective.x, len(refit.classes))
    model = refit.fit(best_c, init=init, tol=tol, max_iter=max_iter)
    iterations["refit"] = model.iterations
    logits = model.logits((test_t - joint_mean) / joint_scale).cpu().numpy()
    top1, top5, per_class, confusion = _score(logits, model.classes, joint_l, test_l)
    return ProbeResult(best_c, val_top1, top1, top5, per_class, confusion, iterations, model, joint_mean, joint_scale)


def _sklearn_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    val_x: ArrayLike,
    val_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    c_grid: tuple[float, ...],
    max_iter: int,
) -> ProbeResult:
    """The previous probe: scikit-learn's L-BFGS, one cold fit per C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def numpy(a: ArrayLike) -> np.ndarray:
        return a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)

    train_x, val_x, test_x = numpy(train_x), numpy(val_x), numpy(test_x)
    train_y, val_y, test_y = labels_of(train_y), labels_of(val_y), labels_of(test_y)

    def fit(x: np.ndarray, y: np.ndarray, c: float) -> LogisticRegression:
        return LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter).fit(x, y)

    scaler = StandardScaler().fit(train_x)
    train_s, val_s = scaler.transform(train_x), scaler.transform(val_x)
    iterations: dict[str, int] = {}
    val_top1 = {}
    for c in c_grid:
        model = fit(train_s, train_y, c)
        val_top1[c] = float(model.score(val_s, val_y))
        iterations[f"C={c:g}"] = int(model.n_iter_.max())
    best_c = choose_c(val_top1)

    joint_x, joint_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    scaler = StandardScaler().fit(joint_x)
    model = fit(scaler.transform(joint_x), joint_y, best_c)
    iterations["refit"] = int(model.n_iter_.max())
    logits = model.predict_log_proba(scaler.transform(test_x))
    top1, top5, per_class, confusion = _score(logits, model.classes_, joint_y, test_y)
    return ProbeResult(best_c, val_top1, top1, top5, per_class, confusion, iterations)
