"""Registry of methods: name -> LightningModule class, and building one for a recipe and its data."""

import torch

from ssl_coded.data import Splits
from ssl_coded.training.config import RecipeConfig
from ssl_coded.training.methods.base import SSLMethod
from ssl_coded.training.methods.byol import BYOL
from ssl_coded.training.methods.mae import MAE
from ssl_coded.training.methods.simclr import SimCLR
from ssl_coded.training.methods.supervised import Supervised

METHODS: dict[str, type[SSLMethod]] = {"simclr": SimCLR, "byol": BYOL, "mae": MAE, "supervised": Supervised}


def get_method(name: str) -> type[SSLMethod]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def build_method(config: RecipeConfig, splits: Splits) -> SSLMethod:
    """The recipe's method, sized for its data (channels, image size, classes, normalisation)."""
    return get_method(config.method.name)(
        config,
        num_classes=splits.num_classes,
        in_channels=splits.channels,
        image_size=splits.image_size,
        mean=splits.mean,
        std=splits.std,
    )


def build_random_init(config: RecipeConfig, splits: Splits) -> SSLMethod:
    """The recipe's method at the random initialisation its seed gives (the random-init floor)."""
    torch.manual_seed(config.seed)
    return build_method(config, splits)


__all__ = [
    "BYOL",
    "MAE",
    "METHODS",
    "SSLMethod",
    "SimCLR",
    "Supervised",
    "build_method",
    "build_random_init",
    "get_method",
]
