"""VICReg (Bardes et al. 2022): its recipe section here, its model in `model.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import IMixConfig, ProjectionConfig


@dataclass
class VICRegConfig(IMixConfig, ProjectionConfig):
    name: str = "vicreg"
    projection_dim: int = 2048
    hidden_dim: int = 2048
    projection_layers: int = 2  # lightly's example: 2 (the paper: 3 of 8192)
    invariance_weight: float = 25.0  # lambda
    variance_weight: float = 25.0  # mu
    covariance_weight: float = 1.0  # nu

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {
        **ProjectionConfig.BOUNDS,
        **IMixConfig.BOUNDS,
        "projection_layers": (2, True),
        "invariance_weight": (0, True),
        "variance_weight": (0, True),
        "covariance_weight": (0, True),
    }

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = IMixConfig.CHOICES


CONFIG = VICRegConfig
MODEL = "model:VICReg"
