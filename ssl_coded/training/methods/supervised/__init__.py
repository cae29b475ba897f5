"""A classifier trained with ERM, mixup, Manifold Mixup, noise or coded-smoothing: its recipe section
here, its model in `model.py` (imported when it is built)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ssl_coded.training.methods.config import MethodConfig

REGULARIZERS: tuple[str, ...] = ("erm", "mixup", "manifold_mixup", "noise", "coded")
COMPARED: tuple[str, ...] = ("erm", "mixup", "coded")  # what `train --compare` trains side by side


@dataclass
class SupervisedConfig(MethodConfig):
    name: str = "supervised"
    regularizer: str = "erm"  # erm | mixup | manifold_mixup | noise | coded (coded: the `coded` section)
    mixup_alpha: float = 0.2  # (manifold_)mixup: mixing weights ~ Beta(alpha, alpha)
    # manifold_mixup: the layers mixed at, one drawn per step ("input" or dotted submodule names)
    mixup_layers: list[str] = field(default_factory=lambda: ["input", "backbone.features.1", "backbone.features.3"])
    noise_std: float = 0.1  # regularizer=noise: Gaussian noise on [0, 1] pixels

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {"mixup_alpha": (0, True), "noise_std": (0, True)}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"regularizer": REGULARIZERS}


CONFIG = SupervisedConfig
MODEL = "model:Supervised"
