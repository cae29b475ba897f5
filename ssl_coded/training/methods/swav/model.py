"""SwAV from lightly's projection head, prototypes and swapped-prediction loss (Sinkhorn-Knopp codes), as
lightly's example loop (`examples/pytorch/swav.py`) composes them, with multi-crop; without the queue."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from lightly.loss import SwaVLoss
from lightly.loss.swav_loss import sinkhorn
from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes
from torch import Tensor

from ssl_coded.training.methods.base import MultiCropMethod
from ssl_coded.training.mixing import imix_partner_loss, mix, mixing_weight


class SwAV(MultiCropMethod):
    """Every crop's normalised projection is scored against learnable prototypes; each global crop's
    Sinkhorn codes are predicted from every other crop (gathered across ranks under DDP).

    Coded branch placements: "embedding" (default; the projection head runs on coded backbone features of
    the first global crop) or "input". `method.mixing=imix` adds i-Mix's loss in its mixture-of-losses form
    (one more pass per step).
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
        loss = self.criterion(high, low)
        m = self.config.method
        if m.mixing == "imix":  # a mixed first crop predicts both instances' codes of the second
            weight, perm = mixing_weight(m.mixing_alpha), torch.randperm(len(images), device=features.device)
            mixed = self.forward(self.formatted(mix(global_views[0], weight, perm)))
            with torch.no_grad():
                c = self.criterion
                codes = sinkhorn(high[1].detach(), c.sinkhorn_iterations, c.sinkhorn_epsilon, gather_distributed=True)
            loss = self.with_mixing(loss, imix_partner_loss(c.subloss, mixed, codes, weight, perm), len(images))
        return loss, features
