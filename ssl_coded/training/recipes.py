"""Recipes as callers use them: parsed by the typed schema, then checked against the registries.

`config.py` knows the types; the names a recipe may use (methods, datasets, backbones, optimisers,
coding families, scores) are owned by the modules that implement them, and asked here, so that a new
method or dataset is registered in one place.

Example:
    >>> config = load_config("simclr-digits", ["trainer.max_epochs=2", "coded.enabled=true"])
    >>> config.method.name, config.trainer.max_epochs
    ('simclr', 2)
"""

from __future__ import annotations

from ssl_coded.coding import KINDS, LAMBDA_UNITS
from ssl_coded.regularizer import SCORES
from ssl_coded.training.backbones import BACKBONES
from ssl_coded.training.config import ConfigError, RecipeConfig, parse_overrides, parse_recipe, parse_yaml
from ssl_coded.training.datasets import DATASETS
from ssl_coded.training.methods import METHODS
from ssl_coded.training.methods.base import OPTIMIZERS
from ssl_coded.training.methods.supervised import CODED_TARGETS, REGULARIZERS


def load_config(recipe: str, overrides: list[str] | None = None) -> RecipeConfig:
    """Load a recipe by name or path, apply `key=value` overrides, validate, return dataclasses."""
    config = parse_recipe(recipe, overrides)
    validate(config)
    return config


def with_overrides(config: RecipeConfig, overrides: list[str]) -> RecipeConfig:
    """A resolved recipe with `key=value` overrides applied (typed and validated like `load_config`)."""
    if not overrides:
        return config
    updated = parse_overrides(config, overrides)
    validate(updated)
    return updated


def config_from_yaml(text: str) -> RecipeConfig:
    """A resolved recipe back from `to_yaml` (e.g. the copy stored in a checkpoint)."""
    config = parse_yaml(text)
    validate(config)
    return config


def validate(config: RecipeConfig) -> None:
    """Names checked against their registries, and the cross-field checks the types cannot express."""
    choices = {
        "coded.kind": (config.coded.kind, KINDS),
        "coded.lambda_units": (config.coded.lambda_units, LAMBDA_UNITS),
        "coded.score": (config.coded.score, SCORES),
        "optim.name": (config.optim.name, OPTIMIZERS),
        "method.name": (config.method.name, tuple(METHODS)),
        "method.regularizer": (config.method.regularizer, REGULARIZERS),
        "coded.target": (config.coded.target, CODED_TARGETS),
        "inference.kind": (config.inference.kind, KINDS),
        "data.name": (config.data.name, DATASETS),
    }
    for key, (value, valid) in choices.items():
        if value not in valid:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(valid)}")
    if not (config.model.backbone in BACKBONES or config.model.backbone.startswith("resnet")):
        raise ConfigError(f"model.backbone={config.model.backbone!r} is not one of {', '.join(BACKBONES)}")
    if not 0.0 < config.data.val_fraction < 1.0:
        raise ConfigError(
            f"data.val_fraction={config.data.val_fraction} must be in (0, 1): validation is carved from train"
        )
    low, high = [*config.augment.crop_scale, 0, 0][:2]
    if len(config.augment.crop_scale) != 2 or not 0 < low <= high <= 1:
        raise ConfigError(
            f"augment.crop_scale={config.augment.crop_scale} must be [low, high] with 0 < low <= high <= 1"
        )
    if not 0.0 < config.method.mask_ratio < 1.0:
        raise ConfigError(f"method.mask_ratio={config.method.mask_ratio} must be in (0, 1)")
    if config.coded.kind == "mix" and config.coded.gather:
        raise ConfigError("coded.kind=mix draws its mixtures per rank; it cannot code a gathered batch (coded.gather)")
    if config.method.name == "supervised" and config.coded.enabled:
        raise ConfigError("supervised recipes turn coded-smoothing on with method.regularizer=coded, not coded.enabled")
    if config.trainer.batch_size < 2:
        raise ConfigError(f"trainer.batch_size={config.trainer.batch_size} is too small; use at least 2")
