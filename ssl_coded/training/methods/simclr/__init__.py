"""SimCLR (Chen et al. 2020): its recipe section here, its model in `model.py` (imported when it is built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import IMixConfig, ProjectionConfig


@dataclass
class SimCLRConfig(IMixConfig, ProjectionConfig):
    name: str = "simclr"
    temperature: float = 0.2  # NT-Xent's

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {
        **ProjectionConfig.BOUNDS,
        **IMixConfig.BOUNDS,
        "temperature": (0, False),
    }
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = IMixConfig.CHOICES


CONFIG = SimCLRConfig
MODEL = "model:SimCLR"
