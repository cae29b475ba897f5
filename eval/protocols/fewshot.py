"""Few-shot evaluation: a linear probe and a kNN on a small labelled fraction of train, several seeded
draws, mean and standard deviation (SimCLR's and BYOL's 1% and 10% of the labels, on frozen features).

Each draw takes `fraction` of every class's train rows (at least one), seeded by (seed, fraction, draw).
The probe is scikit-learn-style multinomial logistic regression fitted on those rows alone, its C chosen
on the validation split (a seeded 10% of train carved off where there is none; those labels stay
outside the fraction, as ImageNet's validation set does in the papers); the kNN votes with the draw as
its bank (k = 20 or the bank's size, T = 0.07), with nothing chosen.

Row, per fraction (`fewshot1` for 1%): `fewshot1_linear_top1`, `fewshot1_knn_top1` (means over the
draws) and their `_std` (sample standard deviation); every draw's figures and sizes go to `details`.

Example:
    >>> draws = fewshot_draws(train_y, fraction=0.01, draws=5, seed=0)
    >>> [len(rows) for rows in draws]
"""

from __future__ import annotations

import numpy as np
import torch
from ssl_coded.eval.features import as_tensor
from ssl_coded.eval.linear_probe import linear_probe
from ssl_coded.eval.protocols.base import Outcome, SplitFeatures, Task
from ssl_coded.eval.protocols.probe import probe_splits

from ssl_coded.search.knn import PRESETS, KnnBank, rank_classes

FRACTIONS = (0.01, 0.1)
DRAWS = 5


def fewshot_draws(labels: np.ndarray, fraction: float, draws: int, seed: int) -> list[np.ndarray]:
    """`draws` sorted row sets, each `fraction` of every class's rows (rounded, at least one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a few-shot fraction is in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    out = []
    for draw in range(draws):
        rng = np.random.default_rng([seed, round(fraction * 1_000_000), draw])
        rows = [
            rng.choice(members, size=max(1, round(fraction * len(members))), replace=False)
            for members in (np.flatnonzero(labels == c) for c in np.unique(labels))
        ]
        out.append(np.sort(np.concatenate(rows)))
    return out


def knn_top1(bank_x, bank_y, test_x, test_y, num_classes: int, device) -> float:
    """Top-1 of the dino preset's vote (k capped at the bank's size)."""
    k, temperature = PRESETS["dino"]
    bank, queries = as_tensor(bank_x, device, torch.float32), as_tensor(test_x, device, torch.float32)
    similarity, neighbours = KnnBank(bank).search(queries, min(k, len(bank)))
    labels = as_tensor(bank_y, device, torch.long)[neighbours]
    ranked = rank_classes(similarity, labels, num_classes, temperature)
    return float((ranked[:, 0].cpu() == torch.as_tensor(np.asarray(test_y))).float().mean())


def label(fraction: float) -> str:
    """`fewshot1` for 1%, `fewshot0.5` for 0.5%."""
    return f"fewshot{100 * fraction:g}"


def run(features: SplitFeatures, task: Task) -> Outcome:
    (fit_x, fit_y), (val_x, val_y) = probe_splits(features, task.seed)
    test_x, test_y = features["test"]
    fit_x, val_x, test_x = np.asarray(fit_x), np.asarray(val_x), np.asarray(test_x)
    row: dict[str, float] = {}
    details: dict[str, dict] = {}
    for fraction in task.settings.fewshot_fractions:
        figures: dict[str, list[float]] = {"linear_top1": [], "knn_top1": []}
        sizes = []
        for rows in fewshot_draws(fit_y, fraction, task.settings.fewshot_draws, task.seed):
            x, y = fit_x[rows], np.asarray(fit_y)[rows]
            probe = linear_probe(x, y, val_x, val_y, test_x, test_y, device=task.device, refit=False)
            figures["linear_top1"].append(probe.test_top1)
            figures["knn_top1"].append(knn_top1(x, y, test_x, test_y, task.num_classes, task.device))
            sizes.append(len(rows))
        name = label(fraction)
        for metric, values in figures.items():
            row[f"{name}_{metric}"] = float(np.mean(values))
            row[f"{name}_{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        details[name] = {"fraction": fraction, "labelled_rows": sizes, **figures}
    return Outcome(row, extra=details)
