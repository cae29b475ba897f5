"""Datasets as tensors. The embedded default is scikit-learn's bundled digits (no download)."""

from __future__ import annotations

import torch
from torch import Tensor


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Digits (8x8, 1797 images, 10 classes) as (train_x, train_y, test_x, test_y).

    Images are float32 of shape (n, 1, 8, 8) in [0, 1]; the split is stratified-free and fixed by
    `seed`.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    num_test = round(test_fraction * len(labels))
    test, train = order[:num_test], order[num_test:]
    return images[train], labels[train], images[test], labels[test]
