"""SwAV from lightly's projection head, prototypes and swapped-prediction loss (Sinkhorn-Knopp codes), as
lightly's example loop (`examples/pytorch/swav.py`) composes them, with multi-crop; without the queue."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from lightly.loss import SwaVLoss
from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes
from torch import Tensor

from ssl_coded.training.methods.base import MultiCropMethod


class SwAV(MultiCropMethod):
    """Every crop's normalised projection is scored against learnable prototypes; each global crop's
    Sinkhorn codes are predicted from every other crop (gathered across ranks under DDP).

    Coded branch placements: "embedding" (default; the projection head runs on coded backbone features of
    the first global crop) or "input".
    """

    placements: ClassVar[dict[str, str]] = {"embedding": "projection_head", "input": "backbone"}

    def __init__(self, config, **data) -> None:
        super().__init__(config, **data)
        m = config.method
        self.projection_head = SwaVProjectionHead(self.feature_dim, m.hidden_dim, m.projection_dim)
        self.prototypes = SwaVPrototypes(
            m.projection_dim, m.prototypes, n_steps_frozen_prototypes=m.frozen_prototype_steps
        )
        self.criterion = SwaVLoss(
            temperature=m.temperature, sinkhorn_iterations=m.sinkhorn_iterations,
            sinkhorn_epsilon=m.sinkhorn_epsilon, sinkhorn_gather_distributed=True,
        )  # fmt: skip

    def scores(self, features: Tensor) -> Tensor:
        """Prototype scores of backbone features: projected, normalised, scored."""
        return self.prototypes(F.normalize(self.projection_head(features), dim=1, p=2), self.global_step)

    def forward(self, x: Tensor) -> Tensor:
        return self.scores(self.backbone(x))

    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        self.prototypes.normalize()
        global_views = [self.view(images), self.view(images)]
        features = self.backbone(global_views[0])
        high = [self.scores(features), self.forward(global_views[1])]  # first: the coded hook codes it
        low = [self.forward(view) for view in self.local_views(images)]
        return self.criterion(high, low), features
