"""Typed recipe schema: YAML recipe + `key=value` overrides -> validated dataclasses (OmegaConf).

A recipe is a YAML file with the sections below; every key is optional and defaults to the
dataclass field. The `method` section is typed by the method's own config, declared beside its model
(`ssl_coded.training.methods.<name>`), once `method.name` is known. Unknown keys and wrong types fail
with a `ConfigError` naming the valid keys.

The checks that need the registries (method, dataset, backbone, coding names) live one level up,
in `ssl_coded.training.recipes`, which is what callers use.

Example:
    >>> config = parse_recipe("simclr-digits", ["trainer.max_epochs=2", "coded.enabled=true"])
    >>> config.method.name, config.trainer.max_epochs
    ('simclr', 2)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ssl_coded.data.config import DataConfig
from ssl_coded.errors import ConfigError
from ssl_coded.training.methods.registry import DEFAULT_METHOD, method_config

__all__ = ["ConfigError", "DataConfig", "RecipeConfig"]  # ConfigError and DataConfig live below; imported here


@dataclass
class AugmentConfig:
    enabled: bool = True  # false: the model sees the images as they are (a supervised regime without augmentation)
    crop_scale: list[float] = field(default_factory=lambda: [0.4, 1.0])
    horizontal_flip: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    noise: float = 0.0


@dataclass
class ModelConfig:
    backbone: str = "small_cnn"  # small_cnn | resnet18_cifar | vit | any torchvision resnet (resnet18, ...)
    width: int = 32  # small_cnn width
    pool: int = 1  # small_cnn: average-pool the last map to pool x pool (features: 4 * width * pool^2)
    patch_size: int = 0  # ViT patch size (0 = the largest of 4, 2, 1 giving at most 16x16 patches)
    vit_dim: int = 192
    vit_depth: int = 6
    vit_heads: int = 3


@dataclass
class CodedConfig:
    enabled: bool = False
    weight: float = 0.5
    kind: str = "spline"
    coded_ratio: float = 2.0
    num_coded: int = 0  # 0 = coded_ratio * K
    lambda_enc: float = 1e-2
    lambda_dec: float = 1e-2
    lambda_units: str = "spacing"
    score: str = "mse"
    placement: str = ""  # a method's named placement or a dotted submodule name ("" = the method's default)
    max_passes_per_step: int = 1  # 0 = every forward
    coded_batch_size: int = 0  # 0 = all N coded samples in one call
    gather: bool = False  # under DDP: code the batch gathered across ranks
    target: str = "labels"  # supervised: decoded logits vs the labels (paper) or vs the model's own "outputs"
    # "absolute": the penalty is weight x score (what every run before 0.2 did: the recipes behind docs/RESULTS.md
    # pin it); "loss": weight x (the method's loss - its floor); "gradient": a penalty whose gradient on the hooked
    # parameters is weight x the loss's (both hook.regularize): one weight for every method
    weighting: str = "absolute"


@dataclass
class InferenceConfig:
    """Randomized coded inference (RCI) of a classifier: the defaults come from the fidelity sweep."""

    kind: str = "berrut"
    coded_ratio: float = 8.0  # chosen by the fidelity sweep (docs/RESULTS.md)
    lambda_enc: float = 1e-2
    lambda_dec: float = 1e-2
    num_draws: int = 1
    batch_size: int = 64  # K: inputs coded together


@dataclass
class AttackConfig:
    """The attack harness (`ssl-coded attack`): L-inf attacks on [0, 1] pixels."""

    eps: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1])
    steps: int = 10  # PGD steps, step size eps / 4, random start
    eot_samples: int = 4  # EOT-PGD: random draws of the defence averaged per step
    square_queries: int = 100  # gradient-free Square-style search
    num_examples: int = 400  # test images attacked (a seeded subset)
    sanity_eps: float = 0.5  # accuracy must fall to ~0 here
    standard: bool = True  # also torchattacks' APGD-CE / APGD-DLR / Square (EOT forms and EOT-PGD on RCI): [attack]
    rci: bool = True  # also serve each coded-trained model behind RCI (its attacks cost far more)


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd | lars
    lr: float = 1e-3  # for batch 256; scaled linearly by batch_size * devices / 256
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_epochs: int = 1


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    batch_size: int = 256  # per device
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    channels_last: bool = False
    limit_train_batches: float = 1.0
    log_every_n_steps: int = 10
    threads: int = 0  # torch CPU threads (0 = torch's default)
    logger: str = "csv"  # "tensorboard" also writes TensorBoard event files, "mlflow" an MLflow file store (extras)


@dataclass
class EvalConfig:
    knn_k: int = 200  # instdisc preset
    knn_temperature: float = 0.1
    bank_size: int = 0  # train images in the kNN bank (0 = all)
    every_n_epochs: int = 1
    floors: bool = True  # the run summary's raw-pixel and random-init kNN (a study computes them once, not per cell)


@dataclass
class RecipeConfig:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    # typed by the method's own config (`ssl_coded.training.methods.<name>`), once its name is known
    method: Any = field(default_factory=lambda: {"name": DEFAULT_METHOD})
    coded: CodedConfig = field(default_factory=CodedConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    seed: int = 0
    out_dir: str = "runs"
    name: str = MISSING  # run name; defaults to the recipe's name


def recipe_dir() -> Path:
    """The bundled recipes: `recipes/` in a checkout, `ssl_coded/recipes/` in an installed wheel."""
    return Path(str(resources.files("ssl_coded.recipes")))


def available_recipes() -> list[str]:
    return sorted(path.stem for path in recipe_dir().glob("*.yaml"))


def resolve_recipe(recipe: str) -> Path:
    """A recipe name (`simclr-digits`), a path to a YAML file, or a path to a file without the suffix."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(
                f"recipe file {recipe} does not exist; give a path to a YAML file or a recipe name "
                "(`ssl-coded recipes` lists the bundled ones)"
            )
        return path
    bundled = recipe_dir() / f"{recipe}.yaml"
    if "/" not in recipe and "\\" not in recipe and bundled.is_file():
        return bundled
    if path.is_file():  # a recipe file named without the suffix: parsed (and refused if it is not YAML) as any
        return path
    for suffix in (".yaml", ".yml"):
        if Path(f"{recipe}{suffix}").is_file():
            raise ConfigError(
                f"recipe {recipe!r} is not a bundled recipe name nor a file; did you mean {recipe}{suffix}? "
                "(`ssl-coded recipes` lists the bundled ones)"
            )
    raise ConfigError(
        f"unknown recipe {recipe!r}; valid recipes: {', '.join(available_recipes())} (or a path to a YAML file)"
    )


def _valid_keys(node: Any, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name, None)
        if dataclasses.is_dataclass(value):
            keys += _valid_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _friendly(error: OmegaConfBaseException, source: str, method: str = DEFAULT_METHOD) -> ConfigError:
    key = getattr(error, "full_key", "") or ""
    section = key.rsplit(".", 1)[0] if "." in key else ""
    keys = _valid_keys(RecipeConfig(method=method_config(method)()))
    valid = [k for k in keys if k.startswith(section + ".")] if section else None
    valid = valid or [f.name for f in dataclasses.fields(RecipeConfig)]
    reason = str(error).splitlines()[0]
    return ConfigError(f"{source}: {reason} (key {key!r}); valid keys here: {', '.join(valid)}")


def parse_recipe(recipe: str, overrides: list[str] | None = None) -> RecipeConfig:
    """A recipe by name or path with `key=value` overrides, typed but not yet checked against the
    registries (`ssl_coded.training.recipes.load_config` does both)."""
    path = resolve_recipe(recipe)
    schema = OmegaConf.structured(RecipeConfig)
    try:
        loaded = OmegaConf.load(path)
    except Exception as error:  # YAML syntax errors come in several types
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"recipe {path} is not valid YAML{where}: {reason}") from error
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"recipe {path} must be a mapping of sections (data, model, method, ...)")
    if not loaded:  # an empty or comment-only file would train every default without a word
        raise ConfigError(f"recipe {path} is empty; give at least its data and method sections")
    try:
        merged = OmegaConf.merge(schema, loaded)
    except OmegaConfBaseException as error:
        raise _friendly(error, f"recipe {path}") from error
    merged = _typed_method(_apply_overrides(merged, overrides or []), f"recipe {path}")
    if OmegaConf.is_missing(merged, "name"):
        merged.name = path.stem
    config: RecipeConfig = OmegaConf.to_object(merged)
    return config


def _typed_method(merged: DictConfig, source: str, legacy: bool = False) -> DictConfig:
    """The recipe with its `method` section typed by the method's own config: an unknown method, an
    unknown key of it or a wrong type fails naming the method's keys. `legacy`: a stored recipe from before
    the sections were per method, which held every method's keys; the other methods' are dropped."""
    section = merged.method if isinstance(merged.method, DictConfig) else OmegaConf.create({})
    name = str(section.get("name", DEFAULT_METHOD))
    config_class = method_config(name)
    if legacy:
        keys = {f.name for f in dataclasses.fields(config_class)}
        section = OmegaConf.create({k: v for k, v in OmegaConf.to_container(section).items() if k in keys})
    try:
        merged.method = OmegaConf.merge(OmegaConf.structured(config_class), section)
    except OmegaConfBaseException as error:
        raise _method_error(error, source, name, config_class) from error
    return merged


def _method_error(error: OmegaConfBaseException, source: str, name: str, config_class: type) -> ConfigError:
    """A bad key of the method section, named in full with the method's own keys (and, for another
    method's key, the methods that have it)."""
    from ssl_coded.training.methods.registry import METHODS

    key = str(getattr(error, "full_key", "") or "").removeprefix("method.")
    own = ", ".join(f.name for f in dataclasses.fields(config_class))
    if key and key not in {f.name for f in dataclasses.fields(config_class)}:
        owners = [m for m in METHODS if key in {f.name for f in dataclasses.fields(method_config(m))}]
        where = f" (a key of {', '.join(owners)})" if owners else ""
        return ConfigError(f"{source}: method.{key} is not a key of {name}{where}; {name}'s keys: {own}")
    reason = str(error).splitlines()[0]
    return ConfigError(f"{source}: {reason} (key 'method.{key}'); {name}'s keys: {own}")


def _apply_overrides(merged: DictConfig, overrides: list[str]) -> DictConfig:
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} is not key=value (e.g. trainer.max_epochs=5)")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([override]))
        except OmegaConfBaseException as error:
            raise _friendly(error, f"override {override!r}") from error
    return merged


def parse_overrides(config: RecipeConfig, overrides: list[str]) -> RecipeConfig:
    """A resolved recipe with `key=value` overrides applied, typed but not yet checked."""
    if not overrides:
        return config
    updated: RecipeConfig = OmegaConf.to_object(
        _typed_method(_apply_overrides(_untyped(config), overrides), "override")
    )
    return updated


def _untyped(config: RecipeConfig) -> DictConfig:
    """A resolved recipe as the schema with its method section as plain values (so that an override of
    method.name retypes it)."""
    merged = OmegaConf.structured(config)
    method = OmegaConf.to_container(merged.method)
    return OmegaConf.merge(OmegaConf.structured(RecipeConfig), {**OmegaConf.to_container(merged), "method": method})


def parse_yaml(text: str) -> RecipeConfig:
    """A resolved recipe back from `to_yaml` (e.g. the copy stored in a checkpoint), typed."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RecipeConfig), OmegaConf.create(text))
    except OmegaConfBaseException as error:
        raise _friendly(error, "stored recipe") from error
    config: RecipeConfig = OmegaConf.to_object(_typed_method(merged, "stored recipe", legacy=True))
    return config


def to_yaml(config: RecipeConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))
