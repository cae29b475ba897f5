"""The kNN sweep: k and temperature chosen on validation, as DINO's and solo-learn's users sweep them.

Every (k, T) of the grid votes (weighted exp(sim / T), as the `knn` protocol) for the validation
features against the rest of train; the best validation top-1 wins (ties: the smaller k, then the lower
T). The test features then vote with that (k, T) against the whole train split. One exact search per
split serves the whole grid: the k nearest are the first k of the largest k's nearest. Without a
validation split, a seeded 10% of train is carved off (as the probe does).

Row: `knn_sweep_top1`, `knn_sweep_top5`, `knn_sweep_k`, `knn_sweep_t`; the validation top-1 of every
cell goes to results.json's `details`.

Example:
    >>> sweep = knn_sweep(train_x, train_y, val_x, val_y, test_x, test_y, ks=(10, 20), temperatures=(0.07,))
    >>> sweep.k, sweep.temperature, sweep.test_top1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from ssl_coded.eval.features import as_tensor
from ssl_coded.eval.protocols.base import Outcome, SplitFeatures, Task
from ssl_coded.eval.protocols.probe import probe_splits
from torch import Tensor

from ssl_coded.search.knn import KnnBank, rank_classes

KS = (10, 20, 100, 200)
TEMPERATURES = (0.02, 0.05, 0.07, 0.1, 0.2)


@dataclass
class SweepResult:
    """The chosen k and T, the validation top-1 of every cell, and the test scores at the choice."""

    k: int
    temperature: float
    val_top1: dict[tuple[int, float], float]
    test_top1: float
    test_top5: float


def _ranked_by_cell(bank: Tensor, bank_y: Tensor, queries: Tensor, ks: tuple[int, ...], temperatures, num_classes):
    """{(k, T): classes ranked for each query}, from one search of the largest k."""
    similarity, neighbours = KnnBank(bank).search(queries, min(max(ks), len(bank)))
    labels = bank_y[neighbours]
    return {(k, t): rank_classes(similarity[:, :k], labels[:, :k], num_classes, t) for k in ks for t in temperatures}


def knn_sweep(
    train_x: Any,
    train_y: Any,
    val_x: Any,
    val_y: Any,
    test_x: Any,
    test_y: Any,
    ks: tuple[int, ...] = KS,
    temperatures: tuple[float, ...] = TEMPERATURES,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
) -> SweepResult:
    """Choose k and T on validation (bank: train), score on test (bank: train + validation).

    Args:
        train_x, val_x, test_x: features (n, dim), numpy arrays or tensors.
        train_y, val_y, test_y: integer labels.
        ks, temperatures: the grid; a k above the bank's size votes with the whole bank.
        num_classes: default: the largest label + 1.
        device: where the searches run (default: where the features are).
    """
    if not ks or not temperatures or min(ks) < 1 or min(temperatures) <= 0:
        raise ValueError(f"the kNN grid needs k >= 1 and T > 0, got k {ks} and T {temperatures}")
    splits = {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}
    x = {name: as_tensor(f, device, torch.float32) for name, (f, _) in splits.items()}
    y = {name: as_tensor(labels, device, torch.long) for name, (_, labels) in splits.items()}
    num_classes = num_classes or int(max(int(v.max()) for v in y.values())) + 1
    val_ranked = _ranked_by_cell(x["train"], y["train"], x["val"], ks, temperatures, num_classes)
    val_top1 = {cell: float((r[:, 0] == y["val"]).float().mean()) for cell, r in val_ranked.items()}
    k, temperature = max(val_top1, key=lambda cell: (val_top1[cell], -cell[0], -cell[1]))
    bank, bank_y = torch.cat([x["train"], x["val"]]), torch.cat([y["train"], y["val"]])
    ranked = _ranked_by_cell(bank, bank_y, x["test"], (k,), (temperature,), num_classes)[k, temperature]
    top1 = float((ranked[:, 0] == y["test"]).float().mean())
    top5 = float((ranked[:, :5] == y["test"][:, None]).any(dim=1).float().mean())
    return SweepResult(k, temperature, val_top1, top1, top5)


def run(features: SplitFeatures, task: Task) -> Outcome:
    (fit_x, fit_y), (val_x, val_y) = probe_splits(features, task.seed)
    test_x, test_y = features["test"]
    s = task.settings
    result = knn_sweep(
        fit_x, fit_y, val_x, val_y, test_x, test_y, s.knn_ks, s.knn_temperatures, task.num_classes, task.device
    )
    row = {
        "knn_sweep_top1": result.test_top1,
        "knn_sweep_top5": result.test_top5,
        "knn_sweep_k": float(result.k),
        "knn_sweep_t": result.temperature,
    }
    grid = [{"k": k, "t": t, "val_top1": v} for (k, t), v in result.val_top1.items()]
    return Outcome(row, extra={"val_top1": grid, "chosen": {"k": result.k, "t": result.temperature}})


__all__ = ["KS", "TEMPERATURES", "SweepResult", "knn_sweep", "run"]
