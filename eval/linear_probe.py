"""Linear probe on frozen features: L-BFGS logistic regression (scikit-learn), the inverse
regularisation C chosen on the validation split, refit on train + validation, scored once on test.

Example:
    >>> result = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y)
    >>> result.test_top1, result.best_c
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass
class ProbeResult:
    best_c: float
    val_top1: dict[float, float]
    test_top1: float
    test_top5: float
    per_class: list[float] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)


def _fit(x: np.ndarray, y: np.ndarray, c: float, max_iter: int) -> LogisticRegression:
    return LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter).fit(x, y)


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    c_grid: tuple[float, ...] = C_GRID,
    max_iter: int = 1000,
) -> ProbeResult:
    """Choose C on validation, refit on train + validation, score on test."""
    for name, (x, y) in {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}.items():
        if len(x) == 0:
            raise ValueError(f"the {name} split is empty; a linear probe needs train, validation and test features")
        if len(x) != len(y):
            raise ValueError(f"{name}: {len(x)} features but {len(y)} labels")
    if not train_x.shape[1] == val_x.shape[1] == test_x.shape[1]:
        raise ValueError("train, validation and test features differ in dimension; extract them with one encoder")
    scaler = StandardScaler().fit(train_x)
    train_s, val_s = scaler.transform(train_x), scaler.transform(val_x)
    val_top1 = {c: float(_fit(train_s, train_y, c, max_iter).score(val_s, val_y)) for c in c_grid}
    best_c = max(c_grid, key=lambda c: (val_top1[c], -c))  # ties: the stronger regularisation

    joint_x, joint_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    scaler = StandardScaler().fit(joint_x)
    model = _fit(scaler.transform(joint_x), joint_y, best_c, max_iter)
    probabilities = model.predict_proba(scaler.transform(test_x))
    ranked = model.classes_[np.argsort(-probabilities, axis=1)]
    top1 = ranked[:, 0] == test_y
    top5 = (ranked[:, :5] == test_y[:, None]).any(axis=1)
    classes = np.unique(np.concatenate([joint_y, test_y]))
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (np.searchsorted(classes, test_y), np.searchsorted(classes, ranked[:, 0])), 1)
    per_class = [float(top1[test_y == c].mean()) if (test_y == c).any() else float("nan") for c in classes]
    return ProbeResult(best_c, val_top1, float(top1.mean()), float(top5.mean()), per_class, confusion.tolist())


def sgd_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    epochs: int = 30,
    batch_size: int = 256,
    seed: int = 0,
) -> float:
    """Test top-1 of a linear head trained with SGD on cached features (for banks too large for
    L-BFGS): lightly's setting, lr 0.1 x batch/256, momentum 0.9, no weight decay, cosine decay.
    Features are standardised with the train statistics."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    x, y = torch.as_tensor(np.asarray(train_x), dtype=torch.float32), torch.as_tensor(train_y, dtype=torch.long)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / std
    num_classes = int(max(y.max(), int(np.max(test_y)))) + 1
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], num_classes)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1 * batch_size / 256, momentum=0.9)
    steps = epochs * max(1, -(-len(x) // batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = torch.nn.functional.cross_entropy(head(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    with torch.no_grad():
        test = (torch.as_tensor(np.asarray(test_x), dtype=torch.float32) - mean) / std
        predicted = head(test).argmax(1).numpy()
    return float((predicted == np.asarray(test_y)).mean())
