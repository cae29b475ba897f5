"""The linear-probe protocol: L-BFGS with C chosen on validation (`linear_top1`, `linear_top5`,
`linear_c`), or SGD with its lr chosen on validation from a grid, then refit on train + validation
(`linear_sgd_top1`, `linear_sgd_lr`; the grid's validation top-1 in `details`). Without a validation
split, a seeded 10% of train is carved off for the choice."""

from __future__ import annotations

import numpy as np
from ssl_coded.eval.linear_probe import linear_probe
from ssl_coded.eval.protocols.base import Outcome, SplitFeatures, Task
from ssl_coded.eval.sgd_probe import sgd_probe_grid

VAL_FRACTION = 0.1  # of train, carved for the probe's C where no validation split is given


def run(features: SplitFeatures, task: Task) -> Outcome:
    (fit_x, fit_y), (val_x, val_y) = probe_splits(features, task.seed)
    test_x, test_y = features["test"]
    if task.settings.probe == "sgd":
        lrs = task.settings.sgd_lrs
        sgd = sgd_probe_grid(fit_x, fit_y, val_x, val_y, test_x, test_y, lrs, seed=task.seed, device=task.device)
        grid = [{"lr": lr, "val_top1": top1} for lr, top1 in sgd.val_top1.items()]
        return Outcome({"linear_sgd_top1": sgd.test_top1, "linear_sgd_lr": sgd.best_lr}, extra={"val_top1": grid})
    result = linear_probe(
        np.asarray(fit_x), fit_y, np.asarray(val_x), val_y, np.asarray(test_x), test_y, device=task.device
    )
    row = {"linear_top1": result.test_top1, "linear_top5": result.test_top5, "linear_c": result.best_c}
    return Outcome(row, confusion=result.confusion)


def probe_splits(features: SplitFeatures, seed: int) -> tuple[tuple, tuple]:
    """(train, validation) features of the probe: the given ones, or a seeded 10% of train carved off."""
    if "val" in features:
        return features["train"], features["val"]
    x, y = features["train"]
    order = np.random.default_rng(seed).permutation(len(y))
    cut = max(1, round(VAL_FRACTION * len(y)))
    fit, val = np.sort(order[cut:]), np.sort(order[:cut])
    return (np.asarray(x)[fit], y[fit]), (np.asarray(x)[val], y[val])
