"""MAE (He et al. 2022): its recipe section here, its model in `model.py` (imported when it is built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.errors import ConfigError
from ssl_coded.training.methods.config import MethodConfig


@dataclass
class MAEConfig(MethodConfig):
    name: str = "mae"
    mask_ratio: float = 0.75  # of the patches, hidden from the encoder
    decoder_dim: int = 128
    decoder_depth: int = 2
    norm_pix_loss: bool = True  # normalise each target patch

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {"decoder_dim": (1, True), "decoder_depth": (1, True)}

    def check(self) -> None:
        super().check()
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"method.mask_ratio={self.mask_ratio} must be in (0, 1)")


CONFIG = MAEConfig
MODEL = "model:MAE"
