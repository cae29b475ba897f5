"""The method registry: a name -> its package, whose light `__init__.py` declares the method's recipe
section (`CONFIG`) and names its LightningModule (`MODEL`, "module:Class" inside the package). Reading a
recipe asks here for the section's type; nothing here imports Lightning.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ssl_coded.errors import ConfigError
from ssl_coded.training.methods.config import MethodConfig

METHODS: dict[str, str] = {  # name -> package
    "simclr": "simclr",
    "byol": "byol",
    "mae": "mae",
    "supervised": "supervised",
    "moco": "moco",
    "mocov3": "mocov3",
    "vicreg": "vicreg",
    "barlowtwins": "barlowtwins",
    "simsiam": "simsiam",
    "dino": "dino",
    "swav": "swav",
}
DEFAULT_METHOD = "simclr"  # a recipe without method.name


def method_package(name: str) -> ModuleType:
    """The package of the method registered as `name` (light: its config, not its model)."""
    if name not in METHODS:
        raise ConfigError(f"method.name={name!r} is not one of {', '.join(METHODS)}")
    return importlib.import_module(f"ssl_coded.training.methods.{METHODS[name]}")


def method_config(name: str) -> type[MethodConfig]:
    """The recipe section of the method registered as `name` (its package's `CONFIG`)."""
    config: type[MethodConfig] = method_package(name).CONFIG
    return config
