"""Barlow Twins (Zbontar et al. 2021): its recipe section here, its model in `model.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import IMixConfig, ProjectionConfig


@dataclass
class BarlowTwinsConfig(IMixConfig, ProjectionConfig):
    name: str = "barlowtwins"
    projection_dim: int = 2048
    hidden_dim: int = 2048
    lambda_param: float = 5e-3  # weight of the off-diagonal (redundancy) terms

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {
        **ProjectionConfig.BOUNDS,
        **IMixConfig.BOUNDS,
        "lambda_param": (0, True),
    }

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = IMixConfig.CHOICES


CONFIG = BarlowTwinsConfig
MODEL = "model:BarlowTwins"
