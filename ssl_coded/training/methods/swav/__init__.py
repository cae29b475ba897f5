"""SwAV (Caron et al. 2020): its recipe section here, its model in `model.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import IMixConfig, MultiCropConfig, ProjectionConfig


@dataclass
class SwAVConfig(IMixConfig, MultiCropConfig, ProjectionConfig):
    name: str = "swav"
    hidden_dim: int = 512  # lightly's example: 512 hidden, 128 out, 512 prototypes
    projection_dim: int = 128
    prototypes: int = 512
    temperature: float = 0.1
    sinkhorn_iterations: int = 3
    sinkhorn_epsilon: float = 0.05
    frozen_prototype_steps: int = 0  # the prototypes do not learn in the first steps (the paper: 313, an epoch)
    queue_length: int = 0  # earlier projections kept per global crop for the codes (0: no queue; the paper: 3840)
    queue_start_epoch: int = 15  # the queue joins the codes from this epoch (the paper: 15)

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {
        **ProjectionConfig.BOUNDS,
        **MultiCropConfig.BOUNDS,
        **IMixConfig.BOUNDS,
        "prototypes": (1, True),
        "temperature": (0, False),
        "sinkhorn_iterations": (1, True),
        "sinkhorn_epsilon": (0, False),
        "frozen_prototype_steps": (0, True),
        "queue_length": (0, True),
        "queue_start_epoch": (0, True),
    }

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = IMixConfig.CHOICES


CONFIG = SwAVConfig
MODEL = "model:SwAV"
