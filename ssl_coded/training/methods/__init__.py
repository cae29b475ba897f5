"""Registry of methods: a name -> the module and class of its LightningModule, imported when a method is
built, so that checking a recipe (names, choices) never imports Lightning or lightly.

A new method is one file here (a class on `base.SSLMethod`, or `base.TrainedModel` for one with its own
head), its recipes and a line in `METHODS`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ssl_coded.data import Splits
    from ssl_coded.training.config import RecipeConfig
    from ssl_coded.training.methods.base import TrainedModel

METHODS: dict[str, str] = {
    "simclr": "simclr:SimCLR",
    "byol": "byol:BYOL",
    "mae": "mae:MAE",
    "supervised": "supervised:Supervised",
}
# the choices of the methods' own keys, here so that a recipe is checked without importing the methods
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd", "lars")
MIXINGS: tuple[str, ...] = ("none", "imix")  # method.mixing of simclr and byol: the SSL positive control
REGULARIZERS: tuple[str, ...] = ("erm", "mixup", "manifold_mixup", "noise", "coded")  # supervised
COMPARED: tuple[str, ...] = ("erm", "mixup", "coded")  # what `train --compare` trains side by side
CODED_TARGETS: tuple[str, ...] = ("labels", "outputs")  # what a classifier's decoded logits are scored against


def get_method(name: str) -> type[TrainedModel]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    module, cls = METHODS[name].split(":")
    method: type[TrainedModel] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    return method


def build_method(config: RecipeConfig, splits: Splits) -> TrainedModel:
    """The recipe's method, sized for its data (channels, image size, classes, normalisation)."""
    return get_method(config.method.name)(
        config,
        num_classes=splits.num_classes,
        in_channels=splits.channels,
        image_size=splits.image_size,
        mean=splits.mean,
        std=splits.std,
    )


def build_random_init(config: RecipeConfig, splits: Splits) -> TrainedModel:
    """The recipe's method at the random initialisation its seed gives (the random-init floor)."""
    torch.manual_seed(config.seed)
    return build_method(config, splits)


def __getattr__(name: str) -> Any:
    """`from ssl_coded.training.methods import SimCLR` (or SSLMethod, TrainedModel) imports its module then."""
    if name in ("SSLMethod", "TrainedModel"):
        from ssl_coded.training.methods import base

        return getattr(base, name)
    for key, where in METHODS.items():
        if where.endswith(f":{name}"):
            return get_method(key)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CODED_TARGETS",
    "COMPARED",
    "METHODS",
    "MIXINGS",
    "OPTIMIZERS",
    "REGULARIZERS",
    "build_method",
    "build_random_init",
    "get_method",
]
