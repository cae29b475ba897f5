"""SimCLR (Chen et al. 2020) from lightly's projection head and NT-Xent loss."""

from __future__ import annotations

from typing import ClassVar

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import Tensor

from ssl_coded.training.methods.base import SSLMethod
from ssl_coded.training.mixing import imix_contrastive_loss, mix, mixing_weight


class SimCLR(SSLMethod):
    """Two augmented views, a projection head, NT-Xent (gathered across ranks under DDP).

    Coded branch placements: "embedding" (default; the projection head runs on coded backbone
    features) or "input" (the backbone runs on coded images). `method.mixing=imix` adds i-Mix's loss
    on a mixed copy of the first view (one more backbone pass per step).
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
        view0 = self.view(images)
        h0, h1 = self.backbone(view0), self.backbone(self.view(images))
        z0 = self.projection_head(h0)  # first: the coded hook (one pass per step) codes the first view
        z1 = self.projection_head(h1)
        loss = self.criterion(z0, z1)
        if self.config.method.mixing == "imix":
            weight, perm = mixing_weight(self.config.method.mixing_alpha), torch.randperm(len(images), device=h0.device)
            mixed = self.forward(self.formatted(mix(view0, weight, perm)))
            imix = imix_contrastive_loss(mixed, z1, weight, perm, self.config.method.temperature)
            loss = self.with_mixing(loss, imix, len(images))
        return loss, h0
