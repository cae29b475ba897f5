"""BYOL (Grill et al. 2020): its recipe section here, its model in `model.py` (imported when it is built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import IMixConfig, MomentumConfig, ProjectionConfig


@dataclass
class BYOLConfig(IMixConfig, MomentumConfig, ProjectionConfig):
    name: str = "byol"

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {**ProjectionConfig.BOUNDS, **IMixConfig.BOUNDS}
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = IMixConfig.CHOICES


CONFIG = BYOLConfig
MODEL = "model:BYOL"
