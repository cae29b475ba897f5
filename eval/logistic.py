"""Multinomial logistic regression by L-BFGS in torch, on the features' device: scikit-learn's
`LogisticRegression(C=c)` objective (L2, intercept unpenalised), walked along a path of C.

It minimises 0.5 * ||W||^2 + C * sum_i CE_i, written here as mean CE + ||W||^2 / (2 C n) (scikit-learn's
own scaling), and stops on the same test, the largest gradient entry below `tol`. What makes a path of C
cheap: each fit starts from the previous solution and keeps its curvature history (the Hessians of two C
differ by a multiple of the identity on the weights, so the history stays exact after a shift), and each
L-BFGS recursion starts from the inverse Hessian at zero, built from the features' covariance (one
eigendecomposition for the whole path). The probe that chooses C with it is `linear_probe.py`.

Example:
    >>> path = LogisticPath(torch.randn(100, 5), np.arange(100) % 3)
    >>> fits = [path.fit(c) for c in (0.01, 0.1, 1.0)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

ArrayLike = Any  # numpy arrays, torch tensors or anything np.asarray reads


@dataclass
class LogisticFit:
    """A multinomial logistic regression on standardised features: logits = x @ coef.T + intercept.

    `classes` are the labels of the columns; `converged` says whether the gradient test passed (or the
    objective stopped moving at the dtype's precision) before `max_iter`.
    """

    coef: Tensor  # (classes, dim), as scikit-learn's coef_
    intercept: Tensor  # (classes,)
    classes: np.ndarray
    iterations: int
    converged: bool

    def logits(self, x: Tensor) -> Tensor:
        return torch.nn.functional.linear(x, self.coef, self.intercept)


class Preconditioner:
    """M = (Sigma / k + alpha I)^-1 on each class's weights and k on the intercepts, with Sigma the
    features' covariance: the exact inverse Hessian at W = 0 (softmax curvature 1/k there).

    Standardising leaves the features' correlations, and those set the condition number that makes
    plain L-BFGS slow at large C (raw pixels above all); starting each two-loop recursion from M
    instead of a multiple of the identity removes that part. Sigma comes from at most
    max(4096, 2 dim) evenly spaced rows (an estimate suffices), and one eigendecomposition serves
    every alpha along the path.
    """

    def __init__(self, x: Tensor, num_classes: int) -> None:
        rows = min(len(x), max(4096, 2 * x.shape[1]))
        sample = x[:: -(-len(x) // rows)]
        covariance = (sample.T @ sample).double() / len(sample)
        values, vectors = torch.linalg.eigh(covariance)
        self.values, self.vectors = values.clamp_min(0).to(x.dtype), vectors.to(x.dtype)
        self.curvature = 1.0 / num_classes
        self.alpha = 0.0

    def __call__(self, q_w: Tensor, q_b: Tensor) -> None:
        """Apply M in place to a (classes, dim) weight part and a (classes,) intercept part."""
        rotated = q_w @ self.vectors
        rotated /= self.curvature * self.values + self.alpha
        torch.mm(rotated, self.vectors.T, out=q_w)
        q_b /= self.curvature


class _History:
    """L-BFGS curvature pairs (s, y), newest last, with the regularisation they were measured under."""

    def __init__(self, memory: int) -> None:
        self.memory = memory
        self.s: list[Tensor] = []
        self.y: list[Tensor] = []
        self.alpha = 0.0

    def add(self, s: Tensor, y: Tensor) -> None:
        # a convex objective gives s.y >= 0; a pair at the precision floor would poison the scaling
        if float(s @ y) <= 1e-10 * float(y @ y):
            return
        self.s.append(s)
        self.y.append(y)
        if len(self.s) > self.memory:
            self.s.pop(0)
            self.y.pop(0)

    def shift(self, alpha: float, penalised: Tensor) -> None:
        """Move the pairs to a new L2 strength: the gradient of the penalty adds alpha * s on the weights."""
        delta = alpha - self.alpha
        self.y = [y + delta * s * penalised for s, y in zip(self.s, self.y, strict=True)]
        self.alpha = alpha

    def direction(self, g: Tensor, precondition: Callable[[Tensor], Tensor]) -> Tensor:
        """The two-loop recursion: -H g, with H the L-BFGS inverse-Hessian estimate grown from gamma M."""
        q = g.clone()
        rhos = [1.0 / float(s @ y) for s, y in zip(self.s, self.y, strict=True)]
        alphas = []
        for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(rhos), strict=True):
            a = rho * float(s @ q)
            alphas.append(a)
            q.add_(y, alpha=-a)
        q = precondition(q)
        if self.s:  # Nocedal and Wright's scaling, gamma = s.y / y.M y, for the newest pair
            q.mul_(float(self.s[-1] @ self.y[-1]) / float(self.y[-1] @ precondition(self.y[-1].clone())))
        for s, y, rho, a in zip(self.s, self.y, rhos, reversed(alphas), strict=True):
            q.add_(s, alpha=a - rho * float(y @ q))
        return q.neg_()


class _Objective:
    """mean CE + alpha / 2 * ||W||^2 and its gradient, for a flat parameter vector [W (k x dim), b (k)].

    W is kept (classes, dim) so that both products read x row-major: x @ W.T and residual.T @ x run
    several times faster than x @ W and x.T @ residual on CPU BLAS for this skinny shape."""

    def __init__(self, x: Tensor, targets: Tensor, num_classes: int) -> None:
        self.x, self.targets, self.k = x, targets, num_classes
        self.dim = x.shape[1]
        self.rows = torch.arange(len(x), device=x.device)
        self.penalised = torch.ones(self.dim * num_classes + num_classes, dtype=x.dtype, device=x.device)
        self.penalised[self.dim * num_classes :] = 0  # the intercept is not penalised
        self.alpha = 0.0
        self.preconditioner: Preconditioner | None = None

    def split(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        return theta[: self.dim * self.k].view(self.k, self.dim), theta[self.dim * self.k :]

    def precondition(self, q: Tensor) -> Tensor:
        if self.preconditioner is not None:
            self.preconditioner.alpha = self.alpha
            self.preconditioner(*self.split(q))
        return q

    def __call__(self, theta: Tensor) -> tuple[float, Tensor]:
        weight, bias = self.split(theta)
        log_p = torch.nn.functional.linear(self.x, weight, bias).log_softmax(dim=1)
        # summed in float64: near the optimum the Armijo test compares changes far below float32's step
        ce = -log_p[self.rows, self.targets].sum(dtype=torch.float64) / len(self.x)
        loss = float(ce) + 0.5 * self.alpha * float(weight.pow(2).sum(dtype=torch.float64))
        residual = log_p.exp_()  # the softmax, in place
        residual[self.rows, self.targets] -= 1.0
        residual.div_(len(self.x))
        grad = torch.empty_like(theta)
        grad_w, grad_b = self.split(grad)
        torch.addmm(weight, residual.T, self.x, beta=self.alpha, out=grad_w)
        torch.sum(residual, dim=0, out=grad_b)
        return loss, grad


def _lbfgs(
    objective: _Objective, theta: Tensor, history: _History, tol: float, max_iter: int
) -> tuple[Tensor, int, bool]:
    """Minimise from theta; returns (theta, iterations, converged). Backtracking Armijo line search:
    the objective is convex, so every accepted step has s.y >= 0 and no curvature test is needed."""
    loss, grad = objective(theta)
    eps = torch.finfo(theta.dtype).eps
    # scikit-learn passes ftol = 64 x float64's eps; float32 logits leave the loss noisier than that
    ftol = max(64 * torch.finfo(torch.float64).eps, 1e-2 * eps)
    restarted = False
    for iteration in range(max_iter):
        if float(grad.abs().max()) <= tol:
            return theta, iteration, True
        direction = history.direction(grad, objective.precondition)
        slope = float(grad @ direction)
        if slope >= 0:  # a stale history can point uphill: restart from the preconditioned gradient
            history.s, history.y = [], []
            direction = history.direction(grad, objective.precondition)
            slope = float(grad @ direction)
        # without history or preconditioner nothing sets the scale: a first step of unit length
        step = 1.0 if history.s or objective.preconditioner is not None else min(1.0, 1.0 / float(grad.norm()))
        accepted = _backtrack(objective, theta, direction, loss, slope, step, eps)
        if accepted is None:
            if not restarted:  # curvature pairs from far away can mislead: retry without them, once
                restarted, history.s, history.y = True, [], []
                continue
            return theta, iteration, True  # no decrease found: at the precision floor
        candidate, new_loss, new_grad = accepted
        history.add(candidate - theta, new_grad - grad)
        decrease = (loss - new_loss) / max(abs(loss), abs(new_loss), 1.0)
        theta, loss, grad = candidate, new_loss, new_grad
        if decrease <= ftol:  # scipy's relative-reduction test, at a threshold the dtype can resolve
            if not restarted:
                restarted, history.s, history.y = True, [], []
                continue
            return theta, iteration + 1, True
    return theta, max_iter, float(grad.abs().max()) <= tol


def _backtrack(
    objective: _Objective, theta: Tensor, direction: Tensor, loss: float, slope: float, step: float, eps: float
) -> tuple[Tensor, float, Tensor] | None:
    """Armijo backtracking with safeguarded quadratic interpolation; None when no decrease is found
    before the change in the objective falls to the precision floor."""
    for _ in range(30):
        candidate = theta + step * direction
        new_loss, new_grad = objective(candidate)
        if new_loss <= loss + 1e-4 * step * slope:
            return candidate, new_loss, new_grad
        if abs(new_loss - loss) <= 8 * eps * max(abs(loss), 1.0) and step < 1e-3:
            return None
        # the minimiser of the quadratic through loss, slope and new_loss, kept within [0.1, 0.5] x step
        quadratic = -slope * step**2 / (2 * (new_loss - loss - slope * step))
        step = min(max(quadratic, 0.1 * step), 0.5 * step)
    return None


def labels_of(y: ArrayLike) -> np.ndarray:
    return y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)


def default_device(*arrays: ArrayLike) -> torch.device:
    for a in arrays:
        if isinstance(a, Tensor):
            return a.device
    return torch.device("cpu")


def standardiser(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and scale as scikit-learn's StandardScaler (population std; a constant column keeps scale 1)."""
    var, mean = torch.var_mean(x, dim=0, correction=0)
    scale = var.sqrt()
    return mean, torch.where(scale < 10 * torch.finfo(x.dtype).eps, torch.ones_like(scale), scale)


class LogisticPath:
    """Fits of scikit-learn's `LogisticRegression(C=c)` (L2, multinomial, intercept unpenalised) by
    L-BFGS in torch, on one set of standardised features, for a sequence of C.

    Each `fit` starts from the previous solution (or `init`) and keeps the L-BFGS curvature pairs,
    shifted to the new C, so walking C upwards costs far less than a cold fit per C. Works on `x`'s
    device and dtype. With two classes scikit-learn fits one binomial vector; the softmax of two
    columns is the same model with half its penalty, so C is halved to land on the same optimum.

    Example:
        >>> path = LogisticPath(torch.randn(100, 5), np.arange(100) % 3)
        >>> fits = [path.fit(c) for c in (0.01, 0.1, 1.0)]
        >>> fits[-1].logits(torch.randn(4, 5)).argmax(1)
    """

    #: above this dimension the preconditioner's eigendecomposition costs more than it saves
    MAX_PRECONDITIONED_DIM = 2048

    def __init__(self, x: Tensor, y: ArrayLike, memory: int = 20, precondition: bool = True) -> None:
        self.classes, targets = np.unique(labels_of(y), return_inverse=True)
        self.objective = _Objective(x, torch.as_tensor(targets.reshape(-1), device=x.device), len(self.classes))
        if precondition and x.shape[1] <= self.MAX_PRECONDITIONED_DIM:
            self.objective.preconditioner = Preconditioner(x, len(self.classes))
        # scipy keeps 10 pairs; the two-loop recursion costs O(memory x dim x classes), little beside a
        # pass over the features, and 20 pairs save a good share of the passes at large C
        self.history = _History(memory)
        self.theta = torch.zeros(x.shape[1] * len(self.classes) + len(self.classes), dtype=x.dtype, device=x.device)

    def fit(self, c: float, init: LogisticFit | None = None, tol: float = 1e-4, max_iter: int = 1000) -> LogisticFit:
        """Minimise mean CE + ||W||^2 / (2 C n); stop when the largest gradient entry is below `tol`."""
        k = len(self.classes)
        if init is not None:
            if not np.array_equal(init.classes, self.classes):
                raise ValueError("init was fitted on other classes")
            coef, intercept = self.objective.split(self.theta)
            coef.copy_(init.coef)
            intercept.copy_(init.intercept)
        self.objective.alpha = 1.0 / ((c / 2 if k == 2 else c) * len(self.objective.x))
        self.history.shift(self.objective.alpha, self.objective.penalised)
        self.theta, iterations, converged = _lbfgs(self.objective, self.theta, self.history, tol, max_iter)
        coef, intercept = self.objective.split(self.theta)
        return LogisticFit(coef.clone(), intercept.clone(), self.classes, iterations, converged)


def fit_logistic_regression(
    x: Tensor, y: ArrayLike, c: float, *, init: LogisticFit | None = None, tol: float = 1e-4, max_iter: int = 1000
) -> LogisticFit:
    """One fit of scikit-learn's `LogisticRegression(C=c)` on standardised `x`, from zero or `init`
    (see `LogisticPath`).

    Example:
        >>> fit = fit_logistic_regression(torch.randn(100, 5), np.arange(100) % 3, c=1.0)
        >>> fit.coef.shape, fit.intercept.shape
    """
    return LogisticPath(x, y).fit(c, init=init, tol=tol, max_iter=max_iter)
