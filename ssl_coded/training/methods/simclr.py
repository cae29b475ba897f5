"""SimCLR (Chen et al. 2020) from lightly's projection head and NT-Xent loss."""

from __future__ import annotations

from typing import ClassVar

from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import Tensor

from ssl_coded.training.methods.base import SSLMethod


class SimCLR(SSLMethod):
    """Two augmented views, a projection head, NT-Xent (gathered across ranks under DDP).

    Coded branch placements: "embedding" (default; the projection head runs on coded backbone
    features) or "input" (the backbone runs on coded images).
    """

    placements: ClassVar[dict[str, str]] = {"embedding": "projection_head", "input": "backbone"}

    def __init__(self, config, **data) -> None:
        super().__init__(config, **data)
        m = config.method
        self.projection_head = SimCLRProjectionHead(self.feature_dim, m.hidden_dim, m.projection_dim)
        self.criterion = NTXentLoss(temperature=m.temperature, gather_distributed=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection_head(self.backbone(x))

    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        h0, h1 = self.backbone(self.view(images)), self.backbone(self.view(images))
        loss = self.criterion(self.projection_head(h0), self.projection_head(h1))
        return loss, h0
