"""VICReg from lightly's projection head and loss, as lightly's example loop (`examples/pytorch/vicreg.py`)
composes them."""

from __future__ import annotations

from lightly.loss import VICRegLoss
from lightly.models.modules.heads import VICRegProjectionHead

from ssl_coded.training.methods.base import TwoViewMethod


class VICReg(TwoViewMethod):
    """Two views, an expander, and invariance + variance + covariance terms (gathered across ranks under
    DDP). Coded placements: "embedding" (default), "input"."""

    def __init__(self, config, **data) -> None:
        super().__init__(config, **data)
        m = config.method
        self.projection_head = VICRegProjectionHead(
            self.feature_dim, m.hidden_dim, m.projection_dim, num_layers=m.projection_layers
        )
        self.criterion = VICRegLoss(
            lambda_param=m.invariance_weight, mu_param=m.variance_weight, nu_param=m.covariance_weight,
            gather_distributed=True,
        )  # fmt: skip
