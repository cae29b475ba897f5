"""SimSiam from lightly's projection and prediction heads and negative cosine similarity, as lightly's
example loop (`examples/pytorch/simsiam.py`) composes them."""

from __future__ import annotations

from typing import ClassVar

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead
from torch import Tensor

from ssl_coded.training.methods.base import SSLMethod
from ssl_coded.training.mixing import imix_partner_loss, mix, mixing_weight


class SimSiam(SSLMethod):
    """Two views through one network; each view's prediction regresses the other's stop-gradient
    projection, symmetrised (no negatives, no momentum network).

    `method.mixing=imix` adds i-Mix's loss in its mixture-of-losses form (one more pass per step).

    Coded branch placements: "embedding" (default; the projector runs on coded backbone features),
    "input" (the backbone runs on coded images) or "predictor".
    """

    loss_floor: ClassVar[float] = -1.0  # a negative cosine similarity, averaged over the two views
    placements: ClassVar[dict[str, str]] = {
        "embedding": "projection_head",
        "input": "backbone",
        "predictor": "prediction_head",
    }

    def __init__(self, config, **data) -> None:
        super().__init__(config, **data)
        m = config.method
        self.projection_head = SimSiamProjectionHead(self.feature_dim, m.hidden_dim, m.projection_dim)
        self.prediction_head = SimSiamPredictionHead(m.projection_dim, m.prediction_hidden_dim, m.projection_dim)
        self.criterion = NegativeCosineSimilarity()

    def forward(self, x: Tensor) -> Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x)))

    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        view0, view1 = self.view(images), self.view(images)
        h0, h1 = self.backbone(view0), self.backbone(view1)
        z0 = self.projection_head(h0)  # first: the coded hook (one pass per step) codes the first view
        z1 = self.projection_head(h1)
        p0, p1 = self.prediction_head(z0), self.prediction_head(z1)
        loss = 0.5 * (self.criterion(z0.detach(), p1) + self.criterion(z1.detach(), p0))
        if self.config.method.mixing == "imix":  # a mixed first view predicts both instances' projections
            m = self.config.method
            weight, perm = mixing_weight(m.mixing_alpha), torch.randperm(len(images), device=z1.device)
            predicted = self.forward(self.formatted(mix(view0, weight, perm)))
            imix = imix_partner_loss(self.criterion, predicted, z1.detach(), weight, perm)
            loss = self.with_mixing(loss, imix, len(images))
        return loss, h0
