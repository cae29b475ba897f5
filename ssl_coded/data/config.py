"""What data a run or an evaluation reads: a recipe's `data` section, typed (the schema in
`ssl_coded.training.config` embeds it; `ssl-coded eval --dataset key=value` sets it)."""

from __future__ import annotations

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
