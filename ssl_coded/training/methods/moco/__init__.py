"""MoCo v2 (He et al. 2020; Chen et al. 2020): its recipe section here, its model in `model.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import IMixConfig, MomentumConfig, ProjectionConfig


@dataclass
class MoCoConfig(IMixConfig, MomentumConfig, ProjectionConfig):
    name: str = "moco"
    temperature: float = 0.2  # InfoNCE's (MoCo v2: 0.2)
    memory_bank_size: int = 4096  # negative keys kept from earlier batches (the queue)
    momentum_start: float = 0.996  # lightly's example and benchmarks; the paper keeps 0.999 fixed

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {
        **ProjectionConfig.BOUNDS,
        **IMixConfig.BOUNDS,
        "temperature": (0, False),
        "memory_bank_size": (1, True),
    }
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = IMixConfig.CHOICES


CONFIG = MoCoConfig
MODEL = "model:MoCo"
