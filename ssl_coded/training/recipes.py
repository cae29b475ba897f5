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

import math

from ssl_coded.coding import KINDS, LAMBDA_UNITS
from ssl_coded.data.splits import check_data
from ssl_coded.regularizer import SCORES
from ssl_coded.training.backbones import BACKBONES, NAMED, is_named
from ssl_coded.training.config import ConfigError, RecipeConfig, parse_overrides, parse_recipe, parse_yaml
from ssl_coded.training.methods import CODED_TARGETS, OPTIMIZERS


def load_config(recipe: str, overrides: list[str] | None = None) -> RecipeConfig:
    """Load a recipe by name or path, apply `key=value` overrides, validate, return dataclasses."""
    config = parse_recipe(recipe, overrides)
    validate(config)
    refuse_ignored(config, overrides or [])
    return config


def with_overrides(config: RecipeConfig, overrides: list[str]) -> RecipeConfig:
    """A resolved recipe with `key=value` overrides applied (typed and validated like `load_config`)."""
    if not overrides:
        return config
    updated = parse_overrides(config, overrides)
    validate(updated)
    refuse_ignored(updated, overrides)
    return updated


def config_from_yaml(text: str) -> RecipeConfig:
    """A resolved recipe back from `to_yaml` (e.g. the copy stored in a checkpoint)."""
    config = parse_yaml(text)
    validate(config)
    return config


# an override of these keys means nothing unless the named key is "spline": Berrut and random mixing
# have no smoothing, and a sweep over an ignored key would report one run several times
SPLINE_ONLY = {
    "coded.lambda_enc": "coded.kind",
    "coded.lambda_dec": "coded.kind",
    "inference.lambda_enc": "inference.kind",
    "inference.lambda_dec": "inference.kind",
}


def refuse_ignored(config: RecipeConfig, overrides: list[str]) -> None:
    """Refuse an override the resolved recipe would ignore: the run would not be the one asked for."""
    for override in overrides:
        key = override.split("=", 1)[0].strip()
        kind_key = SPLINE_ONLY.get(key)
        if kind_key is None:
            continue
        section, name = kind_key.split(".")
        kind = getattr(getattr(config, section), name)
        if kind != "spline":
            raise ConfigError(
                f"{key} is the spline's smoothing, which {kind_key}={kind!r} ignores; "
                f"add {kind_key}=spline or drop {key}"
            )


def validate(config: RecipeConfig) -> None:
    """Names checked against their registries, and the cross-field checks the types cannot express."""
    choices = {
        "coded.kind": (config.coded.kind, KINDS),
        "coded.lambda_units": (config.coded.lambda_units, LAMBDA_UNITS),
        "coded.score": (config.coded.score, SCORES),
        "optim.name": (config.optim.name, OPTIMIZERS),
        "coded.target": (config.coded.target, CODED_TARGETS),
        "coded.weighting": (config.coded.weighting, WEIGHTINGS),
        "inference.kind": (config.inference.kind, KINDS),
        "trainer.accelerator": (config.trainer.accelerator, ACCELERATORS),
        "trainer.logger": (config.trainer.logger, LOGGERS),
    }
    for key, (value, valid) in choices.items():
        if value not in valid:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(valid)}")
    check_backbone(config.model.backbone)
    if config.trainer.logger == "tensorboard":
        require_tensorboard()
    if config.trainer.logger == "mlflow":
        require_mlflow()
    low, high = [*config.augment.crop_scale, 0, 0][:2]
    if len(config.augment.crop_scale) != 2 or not 0 < low <= high <= 1:
        raise ConfigError(
            f"augment.crop_scale={config.augment.crop_scale} must be [low, high] with 0 < low <= high <= 1"
        )
    if config.coded.kind == "mix" and config.coded.gather:
        raise ConfigError("coded.kind=mix draws its mixtures per rank; it cannot code a gathered batch (coded.gather)")
    if config.method.name == "supervised" and config.coded.enabled:
        raise ConfigError("supervised recipes turn coded-smoothing on with method.regularizer=coded, not coded.enabled")
    if config.trainer.batch_size < 2:
        raise ConfigError(f"trainer.batch_size={config.trainer.batch_size} is too small; use at least 2")
    check_numbers(config)
    config.method.check()  # the method's own keys, by the bounds its config declares
    if config.eval.every_n_epochs > config.trainer.max_epochs:
        raise ConfigError(
            f"eval.every_n_epochs={config.eval.every_n_epochs} exceeds trainer.max_epochs={config.trainer.max_epochs}: "
            "no epoch would be validated and no checkpoint chosen; lower eval.every_n_epochs"
        )
    if not config.name or config.name in (".", "..") or "/" in config.name or "\\" in config.name:
        raise ConfigError(f"name={config.name!r} must be a plain folder name (no '/', not '.' or '..')")
    if config.method.name != "supervised" and config.coded.score == "cross_entropy":
        raise ConfigError(
            "coded.score=cross_entropy scores decoded outputs against class labels, but an SSL recipe's targets "
            "are embeddings; use coded.score=mse or cosine"
        )
    check_data(config.data)  # last: the data layer's checks of its own section


WEIGHTINGS = (
    "absolute",
    "loss",
    "gradient",
)  # coded.weighting: weight x score, x (loss - floor), or x the loss gradient

# the trainer.accelerator values a run can use (Lightning knows more, e.g. tpu, which fail deep inside it)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
LOGGERS = ("csv", "tensorboard", "mlflow")  # metrics.csv is written either way: the run's summary and curves read it

# key -> (lowest allowed, whether the lowest itself is allowed): checked before anything runs, so that
# a negative size is never read as "all" and an epoch count never overflows inside Lightning; the method
# section's bounds are declared by each method's config (`MethodConfig.BOUNDS`)
LOWER_BOUNDS: dict[str, tuple[float, bool]] = {
    "trainer.max_epochs": (1, True),
    "trainer.limit_train_batches": (0, False),
    "trainer.log_every_n_steps": (1, True),
    "trainer.threads": (0, True),
    "trainer.num_nodes": (1, True),
    "eval.knn_k": (1, True),
    "eval.knn_temperature": (0, False),
    "eval.bank_size": (0, True),
    "eval.every_n_epochs": (1, True),
    "coded.weight": (0, True),
    "coded.coded_ratio": (0, False),
    "coded.num_coded": (0, True),
    "coded.lambda_enc": (0, True),
    "coded.lambda_dec": (0, True),
    "coded.max_passes_per_step": (0, True),
    "coded.coded_batch_size": (0, True),
    "optim.lr": (0, False),
    "optim.weight_decay": (0, True),
    "optim.warmup_epochs": (0, True),
    "optim.momentum": (0, True),
    "inference.coded_ratio": (0, False),
    "inference.num_draws": (1, True),
    "inference.batch_size": (2, True),
    "inference.lambda_enc": (0, True),
    "inference.lambda_dec": (0, True),
    "attack.steps": (1, True),
    "attack.eot_samples": (1, True),
    "attack.square_queries": (0, True),
    "attack.num_examples": (1, True),
    "model.width": (1, True),
    "model.pool": (1, True),
    "model.patch_size": (0, True),
    "model.vit_dim": (1, True),
    "model.vit_depth": (1, True),
    "model.vit_heads": (1, True),
    "augment.noise": (0, True),
}


# key -> closed interval: probabilities, jitter strengths relative to the [0, 1] pixel range
INTERVALS: dict[str, tuple[float, float]] = {
    "augment.brightness": (0, 1),
    "augment.contrast": (0, 1),
    "augment.horizontal_flip": (0, 1),
}

# the run's seed reaches numpy (through Lightning's seed_everything), which takes [0, 2**32 - 1] and says so
# without naming the key (the data section checks data.split_seed likewise)
SEED_KEYS = ("seed",)
SEED_MAX = 2**32 - 1


def check_numbers(config: RecipeConfig) -> None:
    """Every numeric key within its range and finite, named in full in the message."""
    for key, (low, inclusive) in LOWER_BOUNDS.items():
        value = _value(config, key)
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            bound = f">= {low:g}" if inclusive else f"> {low:g}"
            raise ConfigError(f"{key}={value} must be {bound}")
    for key, (low, high) in INTERVALS.items():
        value = _value(config, key)
        if not (math.isfinite(value) and low <= value <= high):  # NaN fails every comparison: test it first
            raise ConfigError(f"{key}={value} must be in [{low:g}, {high:g}]")
    for key in SEED_KEYS:
        if not 0 <= _value(config, key) <= SEED_MAX:
            raise ConfigError(f"{key}={_value(config, key)} must be in [0, 2**32 - 1]")
    check_attack(config)


def check_attack(config: RecipeConfig) -> None:
    """The attack radii: L-inf balls on [0, 1] pixels, so each in (0, 1]."""
    eps, sanity = list(config.attack.eps), config.attack.sanity_eps
    if not eps:
        raise ConfigError("attack.eps=[] names no radius; give at least one, e.g. attack.eps=[0.02,0.05]")
    if not all(_radius(e) for e in eps):
        raise ConfigError(f"attack.eps={eps} must each be in (0, 1]: L-inf radii on [0, 1] pixels")
    if not _radius(sanity):
        raise ConfigError(f"attack.sanity_eps={sanity} must be in (0, 1]: an L-inf radius on [0, 1] pixels")


def _radius(eps: float) -> bool:
    return math.isfinite(eps) and 0 < eps <= 1


def _value(config: RecipeConfig, key: str) -> float:
    """The value of a dotted key (`seed`, `data.max_train`)."""
    node: object = config
    for name in key.split("."):
        node = getattr(node, name)
    return node  # type: ignore[return-value]


def check_backbone(name: str) -> None:
    """A backbone of BACKBONES (or any torchvision resnet), or a spec whose kind exists; whether the named
    model exists is found when it is built."""
    if is_named(name):
        kind, _, model = name.partition(":")
        if not model or not kind:
            raise ConfigError(f"model.backbone={name!r} names no model; write {' or '.join(NAMED)}")
        if kind == "timm":
            require_timm()
        return
    if not (name in BACKBONES or name.startswith("resnet")):
        raise ConfigError(f"model.backbone={name!r} is not one of {', '.join(BACKBONES + NAMED)}")


def require_timm() -> None:
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        raise ConfigError("model.backbone=timm:... needs timm: pip install 'ssl-coded[timm]'")


def require_mlflow() -> None:
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError("trainer.logger=mlflow needs MLflow: pip install 'ssl-coded[mlflow]'")


def require_tensorboard() -> None:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("trainer.logger=tensorboard needs tensorboard: pip install 'ssl-coded[tensorboard]'")
