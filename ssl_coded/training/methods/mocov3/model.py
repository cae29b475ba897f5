"""MoCo v3 from lightly's heads and momentum utilities; its contrastive loss follows the paper's
Algorithm 1 (lightly has none): no queue, the batch's keys (gathered across ranks) are the negatives."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from lightly.models.modules import BYOLPredictionHead, MoCoProjectionHead
from lightly.utils import dist
from torch import Tensor

from ssl_coded.training.methods.base import MomentumMethod


def mocov3_loss(query: Tensor, key: Tensor, temperature: float) -> Tensor:
    """InfoNCE of each query against every key of the global batch, its own key the positive, scaled by
    2 x temperature as the paper's code does (so that the gradient's size does not move with it).

    Args:
        query: (n, d) predictions of one view, on this rank.
        key: (n, d) momentum projections of the other view, on this rank (no gradient).
        temperature: the softmax temperature.
    """
    query, key = F.normalize(query, dim=1), F.normalize(key, dim=1)
    keys = torch.cat(dist.gather(key)) if dist.world_size() > 1 else key
    logits = query @ keys.T / temperature
    labels = torch.arange(len(query), device=query.device) + dist.rank() * len(query)
    return F.cross_entropy(logits, labels) * (2 * temperature)


class MoCoV3(MomentumMethod):
    """Both views through the online backbone, projection (BN in every layer) and prediction heads; the
    other view's keys through the EMA copy of backbone and projection; the loss symmetrised. No memory
    bank: large batches give the negatives (the paper: 4,096).

    Coded branch placements: "embedding" (default; the projection head runs on coded backbone features),
    "input" (the online backbone runs on coded images) or "predictor". The momentum copies are made before
    the hook is attached and run under no_grad.
    """

    placements: ClassVar[dict[str, str]] = {
        "embedding": "projection_head",
        "input": "backbone",
        "predictor": "prediction_head",
    }

    def __init__(self, config, **data) -> None:
        super().__init__(config, **data)
        m = config.method
        self.projection_head = MoCoProjectionHead(
            self.feature_dim, m.hidden_dim, m.projection_dim, num_layers=m.projection_layers, batch_norm=True
        )
        self.prediction_head = BYOLPredictionHead(m.projection_dim, m.prediction_hidden_dim, m.projection_dim)
        self.copy_for_momentum()

    def forward(self, x: Tensor) -> Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x)))

    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        self.update_momentum_copies()
        view0, view1 = self.view(images), self.view(images)
        h0 = self.backbone(view0)
        q0 = self.prediction_head(self.projection_head(h0))  # first: the coded hook codes the first view
        q1 = self.forward(view1)
        temperature = self.config.method.temperature
        loss = mocov3_loss(q0, self.forward_momentum(view1), temperature)
        return loss + mocov3_loss(q1, self.forward_momentum(view0), temperature), h0
