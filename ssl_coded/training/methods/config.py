"""What every method's recipe section is built from: `MethodConfig` (its name, its bounds and choices
beside its keys, `check`), and the pieces several methods share (projection sizes, i-Mix).

Each method declares its own section next to its model, in its package's `__init__.py` (light: no
Lightning, so that a recipe is checked before any framework loads), e.g. `simclr/__init__.py`.

Example:
    >>> @dataclass
    ... class MyConfig(ProjectionConfig):
    ...     name: str = "mine"
    ...     temperature: float = 0.1
    ...     BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {**ProjectionConfig.BOUNDS, "temperature": (0, False)}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from ssl_coded.errors import ConfigError

MIXINGS: tuple[str, ...] = ("none", "imix")  # method.mixing of the two-view methods: the SSL positive control


@dataclass
class MethodConfig:
    """The `method` section: the method's name and its own keys (a subclass per method).

    Class attributes (not keys): `BOUNDS` key -> (lowest allowed, whether the lowest itself is allowed),
    `INTERVALS` key -> closed [low, high], `CHOICES` key -> the allowed strings; `check` adds what
    these cannot say.
    """

    name: str = "simclr"

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {}
    INTERVALS: ClassVar[dict[str, tuple[float, float]]] = {}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}

    def check(self) -> None:
        """Every key within its bounds, interval and choices, named in full (`method.temperature=0 must be > 0`)."""
        for key, (low, inclusive) in self.BOUNDS.items():
            value = getattr(self, key)
            if not math.isfinite(value) or value < low or (value == low and not inclusive):
                raise ConfigError(f"method.{key}={value} must be {'>=' if inclusive else '>'} {low:g}")
        for key, (low, high) in self.INTERVALS.items():
            value = getattr(self, key)
            if not (math.isfinite(value) and low <= value <= high):  # NaN fails every comparison: test it first
                raise ConfigError(f"method.{key}={value} must be in [{low:g}, {high:g}]")
        for key, valid in self.CHOICES.items():
            if getattr(self, key) not in valid:
                raise ConfigError(f"method.{key}={getattr(self, key)!r} is not one of {', '.join(valid)}")


@dataclass
class ProjectionConfig(MethodConfig):
    """A method with a projection head (SimCLR, BYOL, ...): its output and hidden sizes."""

    projection_dim: int = 128
    hidden_dim: int = 512

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {"projection_dim": (1, True), "hidden_dim": (1, True)}


@dataclass
class IMixConfig(MethodConfig):
    """i-Mix's loss on mixed first views beside the method's own (`ssl_coded.training.mixing`): the SSL
    positive control of the regularizer studies."""

    mixing: str = "none"  # "imix" adds i-Mix's loss on mixed first views
    mixing_weight: float = 1.0  # imix: its loss's weight beside the method's own
    mixing_alpha: float = 1.0  # imix: mixing weights ~ Beta(alpha, alpha)

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {"mixing_weight": (0, True), "mixing_alpha": (0, False)}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"mixing": MIXINGS}


@dataclass
class MomentumConfig(MethodConfig):
    """A method with an EMA (momentum) target network: its momentum, cosine from start to end over training."""

    momentum_start: float = 0.99
    momentum_end: float = 1.0

    INTERVALS: ClassVar[dict[str, tuple[float, float]]] = {"momentum_start": (0, 1), "momentum_end": (0, 1)}


@dataclass
class MultiCropConfig(MethodConfig):
    """Multi-crop (DINO, SwAV): small crops the student alone sees, beside the two global ones."""

    num_local_crops: int = 0  # 0: the two global crops only
    local_crop_scale: list[float] = field(default_factory=lambda: [0.05, 0.4])
    local_crop_size: int = 0  # pixels (0: 3/7 of the image, as 96 of 224)

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {"num_local_crops": (0, True), "local_crop_size": (0, True)}

    def check(self) -> None:
        super().check()
        low, high = [*self.local_crop_scale, 0, 0][:2]
        if len(self.local_crop_scale) != 2 or not 0 < low <= high <= 1:
            raise ConfigError(
                f"method.local_crop_scale={self.local_crop_scale} must be [low, high] with 0 < low <= high <= 1"
            )
