"""BYOL (Grill et al. 2020) from lightly's heads, loss, momentum update and cosine schedule."""

from __future__ import annotations

from typing import ClassVar

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from torch import Tensor

from ssl_coded.training.methods.base import MomentumMethod
from ssl_coded.training.mixing import imix_regression_loss, mix, mixing_weight


class BYOL(MomentumMethod):
    """Online backbone + projection + prediction against an EMA target network, symmetrised.

    Coded branch placements: "embedding" (default; the projection head runs on coded backbone
    features), "input" (the online backbone runs on coded images) or "predictor".
    The target network is a copy made before the hook is attached and runs under no_grad, so
    the coded branch never touches it. `method.mixing=imix` adds i-Mix's loss: a mixed copy of the
    first view predicts the same mixture of the second view's targets (one more online pass per step).
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
        self.projection_head = BYOLProjectionHead(self.feature_dim, m.hidden_dim, m.projection_dim)
        self.prediction_head = BYOLPredictionHead(m.projection_dim, m.hidden_dim, m.projection_dim)
        self.copy_for_momentum()
        self.criterion = NegativeCosineSimilarity()

    def forward(self, x: Tensor) -> Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x)))

    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        m = self.config.method
        self.update_momentum_copies()
        view0, view1 = self.view(images), self.view(images)
        h0 = self.backbone(view0)
        p0 = self.prediction_head(self.projection_head(h0))
        p1 = self.forward(view1)
        target1 = self.forward_momentum(view1)
        loss = 0.5 * (self.criterion(p0, target1) + self.criterion(p1, self.forward_momentum(view0)))
        if m.mixing == "imix":
            weight, perm = mixing_weight(m.mixing_alpha), torch.randperm(len(images), device=h0.device)
            predicted = self.forward(self.formatted(mix(view0, weight, perm)))
            loss = self.with_mixing(loss, imix_regression_loss(predicted, target1, weight, perm), len(images))
        return loss, h0
