"""Barlow Twins from lightly's projection head and loss, as lightly's example loop
(`examples/pytorch/barlowtwins.py`) composes them."""

from __future__ import annotations

from lightly.loss import BarlowTwinsLoss
from lightly.models.modules import BarlowTwinsProjectionHead

from ssl_coded.training.methods.base import TwoViewMethod


class BarlowTwins(TwoViewMethod):
    """Two views, a projector, and the cross-correlation of their embeddings pushed to the identity
    (gathered across ranks under DDP). Coded placements: "embedding" (default), "input"."""

    def __init__(self, config, **data) -> None:
        super().__init__(config, **data)
        m = config.method
        self.projection_head = BarlowTwinsProjectionHead(self.feature_dim, m.hidden_dim, m.projection_dim)
        self.criterion = BarlowTwinsLoss(lambda_param=m.lambda_param, gather_distributed=True)
