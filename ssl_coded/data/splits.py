"""Train / validation / test splits of a dataset by name (the registry `LOADERS`): the validation split
carved from train with a fixed seed where the dataset has none, subsets drawn at random, channel
statistics counted exactly.

Example:
    >>> splits = load_splits(DataConfig(name="fashion-mnist"))
    >>> loader = splits.train.loader(batch_size=256, shuffle=True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_coded.data.builtin import load_digits_uint8, load_torchvision
from ssl_coded.data.config import DataConfig, check_numbers
from ssl_coded.data.errors import DatasetError
from ssl_coded.data.idx import load_fashion_mnist
from ssl_coded.data.image_folder import StreamingImageFolder, image_folder_datasets
from ssl_coded.data.tensors import TensorImageDataset
from ssl_coded.errors import ConfigError

# A split as training and evaluation see it: either kind gives the same batches.
ImageDataset = TensorImageDataset | StreamingImageFolder


@dataclass
class Splits:
    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    num_classes: int
    mean: tuple[float, ...]  # per channel, of the train split, in [0, 1]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return self.train.channels

    @property
    def image_size(self) -> int:
        return self.train.image_size


def channel_stats(dataset: ImageDataset, batch_size: int = 512) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation (unbiased, as `torch.std`) of a dataset's pixels in [0, 1].

    Counted batch by batch (how often each of the 256 values occurs per channel), so a streamed split is
    never held whole and the sums are exact integers.

    Example:
        >>> mean, std = channel_stats(splits.train)
    """
    counts = torch.zeros(dataset.channels, 256, dtype=torch.int64)
    for images, _ in dataset.loader(batch_size):
        for channel in range(images.shape[1]):
            counts[channel] += torch.bincount(images[:, channel].reshape(-1), minlength=256)
    values = torch.arange(256, dtype=torch.int64)
    mean, std = [], []
    for row in counts:
        n, total, squares = int(row.sum()), int((row * values).sum()), int((row * values * values).sum())
        mean.append(total / n / 255)
        variance = (n * squares - total * total) / (n * (n - 1)) if n > 1 else float("nan")
        std.append(variance**0.5 / 255)
    return tuple(mean), tuple(std)


def _carve_validation(train: ImageDataset, fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    num_val = round(fraction * len(train))
    return train.select(order[num_val:]), train.select(order[:num_val])


# The registry: a dataset name -> its loader, {"train": (uint8 images, labels), "test": ..., and
# optionally "val"} (or datasets, as imagefolder's may stream); a recipe's data.name must be one of these.
LOADERS: dict[str, Callable[[DataConfig], dict[str, tuple[Tensor, Tensor]] | dict[str, ImageDataset]]] = {
    "digits": lambda c: load_digits_uint8(),
    "fashion-mnist": lambda c: load_fashion_mnist(c.root),
    **{name: (lambda c: load_torchvision(c.name, c.root, c.download)) for name in ("cifar10", "cifar100", "stl10")},
    "imagefolder": image_folder_datasets,
}


DATASETS = tuple(LOADERS)


def check_data(config: DataConfig) -> None:
    """A data section's name and numbers, before anything is read (`ConfigError` naming the key)."""
    if config.name not in LOADERS:
        raise ConfigError(f"data.name={config.name!r} is not one of {', '.join(DATASETS)}")
    check_numbers(config)


def _as_dataset(split: tuple[Tensor, Tensor] | ImageDataset) -> ImageDataset:
    return TensorImageDataset(*split) if isinstance(split, tuple) else split


def load_splits(config: DataConfig) -> Splits:
    """Train / validation / test splits for a data config.

    Example:
        >>> splits = load_splits(DataConfig(name="imagefolder", root="data/pets", image_size=96))
        >>> type(splits.train).__name__, splits.image_size
    """
    if config.name not in LOADERS:
        raise DatasetError(f"unknown dataset {config.name!r}; choose one of {', '.join(DATASETS)}")
    if config.stream == "true" and config.name != "imagefolder":
        raise DatasetError(
            f"data.stream=true streams an imagefolder only; {config.name} is loaded in memory: set data.stream=auto"
        )
    raw = {split: _as_dataset(value) for split, value in LOADERS[config.name](config).items()}

    if "val" in raw:
        train, val = raw["train"], raw["val"]
    else:
        train, val = _carve_validation(raw["train"], config.val_fraction, config.split_seed)
    # at most max_train / max_test images each, drawn at random (a prefix of a class-sorted folder would
    # drop classes)
    splits = {
        "train": train.subset(config.max_train, config.split_seed),
        "val": val.subset(config.max_val or config.max_test, config.split_seed),
        "test": raw["test"].subset(config.max_test, config.split_seed),
    }
    del raw, train, val  # an in-memory train split is now held by its parts only
    if config.image_size and config.name != "imagefolder":  # an ImageFolder is decoded at its size
        splits = {name: _resized(ds, config.image_size) for name, ds in splits.items()}
    mean, std = channel_stats(splits["train"])
    num_classes = int(max(ds.labels.max() for ds in splits.values())) + 1
    return Splits(splits["train"], splits["val"], splits["test"], num_classes, mean, std)


def _resized(dataset: ImageDataset, size: int) -> ImageDataset:
    if not isinstance(dataset, TensorImageDataset):
        return dataset
    return TensorImageDataset(_resize(dataset.images, size), dataset.labels, dataset.paths)


def _resize(images: Tensor, size: int) -> Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)
