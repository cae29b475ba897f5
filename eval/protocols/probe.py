"""The linear-probe protocol: L-BFGS with C chosen on validation (`linear_top1`, `linear_top5`,
`linear_c`), or SGD on train + validation (`linear_sgd_top1`). Without a validation split, a seeded
10% of train is carved off to choose C."""

from __future__ import annotations

import numpy as np
from ssl_coded.eval.linear_probe import linear_probe, sgd_probe
from ssl_coded.eval.protocols.base import Outcome, SplitFeatures, Task

VAL_FRACTION = 0.1  # of train, carved for the probe's C where no validation split is given


def run(features: SplitFeatures, task: Task) -> Outcome:
    (fit_x, fit_y), (val_x, val_y) = probe_splits(features, task.seed)
    test_x, test_y = features["test"]
    if task.settings.probe == "sgd":  # no C to choose: train on train + validation
        joint_x, joint_y = np.concatenate([fit_x, val_x]), np.concatenate([fit_y, val_y])
        return Outcome({"linear_sgd_top1": sgd_probe(joint_x, joint_y, np.asarray(test_x), test_y, device=task.device)})
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
