"""The methods: the registry (`registry.py`: a name -> its package, which declares the method's recipe
section in its light `__init__.py`, `CONFIG`, and names its LightningModule, `MODEL`), and the
LightningModule built from a recipe, imported only then, so that checking a recipe never imports
Lightning or lightly.

A new method is a package here (`<name>/__init__.py` with its config, `<name>/model.py` with a class on
`base.SSLMethod`, or `base.TrainedModel` for one with its own head), its recipes and a line in `METHODS`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import torch

from ssl_coded.training.methods.config import MIXINGS, MethodConfig
from ssl_coded.training.methods.registry import DEFAULT_METHOD, METHODS, method_config, method_package
from ssl_coded.training.methods.supervised import COMPARED, REGULARIZERS

if TYPE_CHECKING:
    from ssl_coded.data import Splits
    from ssl_coded.training.config import RecipeConfig
    from ssl_coded.training.methods.base import TrainedModel

# the choices of keys outside the method section that only some methods read
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd", "lars")
CODED_TARGETS: tuple[str, ...] = ("labels", "outputs")  # what a classifier's decoded logits are scored against


def get_method(name: str) -> type[TrainedModel]:
    """The LightningModule of the method registered as `name` (imports Lightning)."""
    package = method_package(name)
    module, cls = package.MODEL.split(":")
    method: type[TrainedModel] = getattr(importlib.import_module(f"{package.__name__}.{module}"), cls)
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
    for key in METHODS:
        if method_package(key).MODEL.endswith(f":{name}"):
            return get_method(key)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CODED_TARGETS",
    "COMPARED",
    "DEFAULT_METHOD",
    "METHODS",
    "MIXINGS",
    "OPTIMIZERS",
    "REGULARIZERS",
    "MethodConfig",
    "build_method",
    "build_random_init",
    "get_method",
    "method_config",
]
