"""MoCo v3 (Chen, Xie and He 2021): its recipe section here, its model in `model.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import MomentumConfig, ProjectionConfig


@dataclass
class MoCoV3Config(MomentumConfig, ProjectionConfig):
    name: str = "mocov3"
    temperature: float = 0.2  # the paper: 0.2 for a ViT, 1.0 for a ResNet (its recipes say which)
    hidden_dim: int = 4096  # both MLPs' hidden layers
    projection_dim: int = 256
    projection_layers: int = 2  # the paper: 2 for a ResNet, 3 for a ViT
    prediction_hidden_dim: int = 4096
    momentum_start: float = 0.99  # the paper's, raised to 1 on a cosine (its ViT recipe)

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {
        **ProjectionConfig.BOUNDS,
        "temperature": (0, False),
        "projection_layers": (2, True),
        "prediction_hidden_dim": (1, True),
    }


CONFIG = MoCoV3Config
MODEL = "model:MoCoV3"
