"""SimSiam (Chen and He 2021): its recipe section here, its model in `model.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import IMixConfig, ProjectionConfig


@dataclass
class SimSiamConfig(IMixConfig, ProjectionConfig):
    name: str = "simsiam"
    projection_dim: int = 2048
    hidden_dim: int = 2048
    prediction_hidden_dim: int = 512  # the predictor's bottleneck (the paper: a quarter of projection_dim)

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {
        **ProjectionConfig.BOUNDS,
        **IMixConfig.BOUNDS,
        "prediction_hidden_dim": (1, True),
    }

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = IMixConfig.CHOICES


CONFIG = SimSiamConfig
MODEL = "model:SimSiam"
