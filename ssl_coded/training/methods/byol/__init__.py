"""BYOL (Grill et al. 2020): its recipe section here, its model in `model.py` (imported when it is built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import IMixConfig, ProjectionConfig


@dataclass
class BYOLConfig(IMixConfig, ProjectionConfig):
    name: str = "byol"
    momentum_start: float = 0.99  # EMA momentum of the target network, cosine to momentum_end
    momentum_end: float = 1.0

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {**ProjectionConfig.BOUNDS, **IMixConfig.BOUNDS}
    INTERVALS: ClassVar[dict[str, tuple[float, float]]] = {"momentum_start": (0, 1), "momentum_end": (0, 1)}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = IMixConfig.CHOICES


CONFIG = BYOLConfig
MODEL = "model:BYOL"
