"""The datasets others ship: scikit-learn's digits (embedded) and torchvision's CIFAR-10/100 and STL-10,
as uint8 (n, C, H, W) tensors and int64 labels per split."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ssl_coded.data.errors import DatasetError


def load_digits_uint8() -> dict[str, tuple[Tensor, Tensor]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(np.round(digits.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    test, train = order[:360], order[360:]
    return {"train": (images[train], labels[train]), "test": (images[test], labels[test])}


def _from_torchvision(dataset) -> tuple[Tensor, Tensor]:
    data = torch.as_tensor(np.asarray(dataset.data))
    if data.dim() == 4 and data.shape[-1] in (1, 3):  # CIFAR stores NHWC
        data = data.permute(0, 3, 1, 2)
    labels = getattr(dataset, "targets", None)
    if labels is None:
        labels = dataset.labels
    return data.contiguous(), torch.as_tensor(np.asarray(labels), dtype=torch.long)


def load_torchvision(name: str, root: str, download: bool) -> dict[str, tuple[Tensor, Tensor]]:
    from torchvision import datasets

    root = root or f"data/{name}"
    try:
        if name in ("cifar10", "cifar100"):
            cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
            return {s: _from_torchvision(cls(root, train=s == "train", download=download)) for s in ("train", "test")}
        return {s: _from_torchvision(datasets.STL10(root, split=s, download=download)) for s in ("train", "test")}
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        raise DatasetError(
            f"{name} not found in {root}: set data.root to its folder, or data.download=true if this machine "
            "can reach the internet"
        ) from error
