"""What data a run or an evaluation reads: a recipe's `data` section, typed (the schema in
`ssl_coded.training.config` embeds it; `ssl-coded eval --dataset key=value` sets it)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ssl_coded.errors import ConfigError

STREAM_MODES = ("auto", "true", "false")


@dataclass
class DataConfig:
    name: str = "digits"  # digits | fashion-mnist | cifar10 | cifar100 | stl10 | imagefolder
    root: str = ""  # folder of the files; "" = the dataset's usual place
    download: bool = False  # torchvision datasets only
    val_fraction: float = 0.1  # carved from train with `split_seed`
    split_seed: int = 0
    image_size: int = 0  # resize to this size (0 = native size; imagefolder: 64, short side resized, centre crop)
    max_train: int = 0  # use at most this many train images (0 = all): quick runs and smoke tests
    max_test: int = 0  # and at most this many validation and test images each
    max_val: int = 0  # at most this many validation images (0 = max_test's limit): a label budget's own val set
    num_workers: int = 0  # DataLoader workers (a streamed imagefolder decodes in them)
    skip_unreadable: bool = False  # imagefolder: skip (and count) images PIL cannot read instead of failing
    stream: str = "auto"  # imagefolder: decode files as batches are read (true), all up front (false), or auto
    memory_budget_mb: int = 2048  # stream=auto streams when the decoded uint8 images would take more (MiB)

    def __post_init__(self) -> None:
        # a string, so that auto and YAML's true / false share one key; OmegaConf hands a YAML boolean to a
        # string field as "True" / "False"
        self.stream = str(self.stream).lower()
        if self.stream not in STREAM_MODES:
            raise ConfigError(f"data.stream={self.stream!r} must be auto, true or false")


# key -> (lowest allowed, whether the lowest itself is allowed): a negative size is never read as "all"
LOWER_BOUNDS: dict[str, tuple[float, bool]] = {
    "max_train": (0, True),
    "max_test": (0, True),
    "max_val": (0, True),
    "image_size": (0, True),
    "num_workers": (0, True),
    "memory_budget_mb": (1, True),
}
SEED_MAX = 2**32 - 1  # numpy's seed range


def check_numbers(config: DataConfig) -> None:
    """Every number of the data section within its range, named by its full key (`data.max_train=-5 must be >= 0`)."""
    for key, (low, inclusive) in LOWER_BOUNDS.items():
        value = getattr(config, key)
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise ConfigError(f"data.{key}={value} must be {'>=' if inclusive else '>'} {low:g}")
    if not 0.0 < config.val_fraction < 1.0:  # NaN fails too
        raise ConfigError(f"data.val_fraction={config.val_fraction} must be in (0, 1): validation is carved from train")
    if not 0 <= config.split_seed <= SEED_MAX:
        raise ConfigError(f"data.split_seed={config.split_seed} must be in [0, 2**32 - 1]")


def parse_data_overrides(items: Sequence[str], base: DataConfig | None = None) -> DataConfig:
    """A data section from `key=value` settings (`name=imagefolder root=DIR image_size=32`, as `ssl-coded eval
    --dataset` takes them), each typed as its field's default is; `base`'s values (default: the defaults)
    elsewhere.

    Raises:
        ConfigError: an item that is not key=value, an unknown key (the valid ones listed) or a value of the
            wrong type, named by its full key.
    """
    values = dataclasses.asdict(base or DataConfig())
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--dataset {item!r} is not key=value (e.g. name=imagefolder root=/data image_size=32)")
        if key not in values:
            valid = ", ".join(f"data.{name}" for name in values)
            raise ConfigError(f"data.{key} is not a key of the data section; valid keys: {valid}")
        values[key] = _typed(key, raw.strip(), values[key])
    return DataConfig(**values)


def _typed(key: str, raw: str, default: object) -> object:
    """`raw` as the type of `default` (bool: true/false; int; float; str as given)."""
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number"}[type(default)]
        raise ConfigError(f"data.{key}={raw!r} must be {kind}") from None
    return raw


def data_record(config: DataConfig) -> dict[str, object]:
    """The data settings that change what is evaluated (not how it is loaded: workers, downloads)."""
    data = dataclasses.asdict(config)
    how = ("num_workers", "download", "stream", "memory_budget_mb")
    return {key: value for key, value in data.items() if key not in how}
