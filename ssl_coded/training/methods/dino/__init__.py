"""DINO (Caron et al. 2021): its recipe section here, its model in `model.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import IMixConfig, MomentumConfig, MultiCropConfig


@dataclass
class DINOConfig(IMixConfig, MultiCropConfig, MomentumConfig):
    name: str = "dino"
    hidden_dim: int = 512  # the head's MLP (lightly's example: 512, bottleneck 64, 2048 prototypes)
    bottleneck_dim: int = 64
    output_dim: int = 2048  # prototypes (the paper: 65536)
    freeze_last_layer: int = 1  # epochs during which the head's last layer does not learn
    student_temperature: float = 0.1
    teacher_temperature: float = 0.04  # after the warm-up
    warmup_teacher_temperature: float = 0.04
    warmup_teacher_temperature_epochs: int = 30
    center_momentum: float = 0.9
    momentum_start: float = 0.996  # the teacher's EMA, cosine to momentum_end

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {
        **MultiCropConfig.BOUNDS,
        **IMixConfig.BOUNDS,
        "hidden_dim": (1, True),
        "bottleneck_dim": (1, True),
        "output_dim": (1, True),
        "freeze_last_layer": (-1, True),
        "student_temperature": (0, False),
        "teacher_temperature": (0, False),
        "warmup_teacher_temperature": (0, False),
        "warmup_teacher_temperature_epochs": (0, True),
    }
    INTERVALS: ClassVar[dict[str, tuple[float, float]]] = {
        **MomentumConfig.INTERVALS,
        "center_momentum": (0, 1),
    }

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = IMixConfig.CHOICES


CONFIG = DINOConfig
MODEL = "model:DINO"
