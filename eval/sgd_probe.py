"""The SGD linear probe on frozen features, with its learning rate chosen on validation.

DINOv2's linear evaluation trains one head per learning rate of a grid on the same batches, picks the
best on validation and reports it; here every head of the grid starts from the same initialisation and
sees the same batches in one pass (one matrix product for all of them), the best validation top-1 wins
(ties: the lower lr), and a head trained at that lr on train + validation is scored once on test.
Settings are lightly's: SGD with momentum 0.9, no weight decay, cosine decay over the steps, the lr
scaled by batch / 256; features standardised with the training rows' statistics.

Example:
    >>> result = sgd_probe_grid(train_x, train_y, val_x, val_y, test_x, test_y, lrs=(0.01, 0.1, 1.0))
    >>> result.best_lr, result.val_top1, result.test_top1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ssl_coded.eval.features import as_tensor
from ssl_coded.eval.logistic import default_device, labels_of
from torch import Tensor

LRS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass
class SgdResult:
    """The chosen lr (before the batch scaling), validation top-1 per lr, and the refit head's test top-1."""

    best_lr: float
    val_top1: dict[float, float]
    test_top1: float


def train_heads(
    x: Tensor, y: Tensor, num_classes: int, lrs: tuple[float, ...], epochs: int, batch_size: int, seed: int
) -> list[torch.nn.Linear]:
    """One linear head per lr, all from the same initialisation, on the same seeded batches of (x, y)."""
    heads = []
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        for _ in lrs:
            torch.manual_seed(seed)
            heads.append(torch.nn.Linear(x.shape[1], num_classes).to(x.device))
    groups = [{"params": head.parameters(), "lr": lr * batch_size / 256} for head, lr in zip(heads, lrs, strict=True)]
    optimizer = torch.optim.SGD(groups, lr=0.0, momentum=0.9)
    steps = epochs * max(1, -(-len(x) // batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same order on every device
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=generator).to(x.device).split(batch_size):
            weight = torch.stack([h.weight for h in heads])  # (heads, classes, dim)
            bias = torch.stack([h.bias for h in heads])[:, None]  # (heads, 1, classes)
            logits = torch.einsum("nd,hcd->hnc", x[index], weight) + bias
            # a sum of the heads' mean losses: each head's gradient is its own loss's
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[index].repeat(len(heads)))
            optimizer.zero_grad()
            (loss * len(heads)).backward()
            optimizer.step()
            scheduler.step()
    return heads


def _top1(head: torch.nn.Linear, x: Tensor, labels: np.ndarray) -> float:
    with torch.no_grad():
        return float((head(x).argmax(1).cpu().numpy() == labels).mean())


def sgd_probe_grid(
    train_x: Any,
    train_y: Any,
    val_x: Any,
    val_y: Any,
    test_x: Any,
    test_y: Any,
    lrs: tuple[float, ...] = LRS,
    epochs: int = 30,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> SgdResult:
    """Choose the lr on validation (heads trained on train), refit on train + validation, score on test.

    Args:
        train_x, val_x, test_x: features (n, dim), numpy arrays or tensors.
        train_y, val_y, test_y: integer labels.
        lrs: the grid, each scaled by batch_size / 256 (lightly's 0.1 is in it).
        epochs, batch_size, seed: of every head's training.
        device: where it trains (default: the features' device, else the CPU).
    """
    if not lrs or min(lrs) <= 0:
        raise ValueError(f"the SGD probe needs learning rates > 0, got {lrs}")
    if len(train_x) < 2:
        raise ValueError(f"the SGD probe needs at least 2 training rows to standardise them, got {len(train_x)}")
    device = torch.device(device) if device is not None else default_device(train_x, val_x, test_x)
    labels = {name: labels_of(y) for name, y in {"train": train_y, "val": val_y, "test": test_y}.items()}
    num_classes = int(max(int(np.max(v)) for v in labels.values())) + 1
    x = as_tensor(train_x, device, torch.float32)
    val = as_tensor(val_x, device, torch.float32)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    y = torch.as_tensor(labels["train"], dtype=torch.long, device=device)
    heads = train_heads((x - mean) / std, y, num_classes, tuple(lrs), epochs, batch_size, seed)
    val_top1 = {lr: _top1(head, (val - mean) / std, labels["val"]) for lr, head in zip(lrs, heads, strict=True)}
    best = max(val_top1, key=lambda lr: (val_top1[lr], -lr))

    joint = torch.cat([x, val])
    mean, std = joint.mean(0), joint.std(0).clamp_min(1e-6)
    joint_y = torch.as_tensor(np.concatenate([labels["train"], labels["val"]]), dtype=torch.long, device=device)
    (head,) = train_heads((joint - mean) / std, joint_y, num_classes, (best,), epochs, batch_size, seed)
    test = (as_tensor(test_x, device, torch.float32) - mean) / std
    return SgdResult(best, val_top1, _top1(head, test, labels["test"]))


def sgd_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    epochs: int = 30,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> float:
    """Test top-1 of one head trained at lightly's lr 0.1 (x batch / 256) on train, nothing chosen.

    Example:
        >>> sgd_probe(train_x, train_y, test_x, test_y, epochs=10)
    """
    device = torch.device(device) if device is not None else default_device(train_x, test_x)
    x = as_tensor(train_x, device, torch.float32)
    labels, test_labels = labels_of(train_y), labels_of(test_y)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    y = torch.as_tensor(labels, dtype=torch.long, device=device)
    num_classes = int(max(int(labels.max()), int(np.max(test_labels)))) + 1
    (head,) = train_heads((x - mean) / std, y, num_classes, (0.1,), epochs, batch_size, seed)
    return _top1(head, (as_tensor(test_x, device, torch.float32) - mean) / std, test_labels)


__all__ = ["LRS", "SgdResult", "sgd_probe", "sgd_probe_grid", "train_heads"]
