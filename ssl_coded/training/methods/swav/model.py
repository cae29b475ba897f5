"""SwAV from lightly's projection head, prototypes and swapped-prediction loss (Sinkhorn-Knopp codes), as
lightly's example loops (`examples/pytorch/swav.py`, `swav_queue.py`) compose them, with multi-crop and
the optional queue of earlier projections (lightly's `MemoryBankModule`, one per global crop)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from lightly.loss import SwaVLoss
from lightly.loss.swav_loss import sinkhorn
from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes
from lightly.models.modules.memory_bank import MemoryBankModule
from torch import Tensor, nn

from ssl_coded.training.methods.base import MultiCropMethod
from ssl_coded.training.methods.memory import bank_state, restore_bank
from ssl_coded.training.mixing import imix_partner_loss, mix, mixing_weight


class SwAV(MultiCropMethod):
    """Every crop's normalised projection is scored against learnable prototypes; each global crop's
    Sinkhorn codes are predicted from every other crop (gathered across ranks under DDP). With
    `method.queue_length`, each global crop's codes are computed beside the prototype scores of that many
    earlier projections (from epoch `method.queue_start_epoch`), as the paper does for small batches.

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
        self.queues = nn.ModuleList(
            [MemoryBankModule(size=(m.queue_length, m.projection_dim)) for _ in range(2)] if m.queue_length else []
        )

    def embed(self, features: Tensor) -> Tensor:
        """Backbone features projected and normalised: what the prototypes score and the queue keeps."""
        return F.normalize(self.projection_head(features), dim=1, p=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.prototypes(self.embed(self.backbone(x)), self.global_step)

    @torch.no_grad()
    def queue_scores(self, embedded: list[Tensor]) -> list[Tensor] | None:
        """Prototype scores of the queued projections of each global crop (None before the queue is used),
        then this batch's projections enqueued."""
        if not self.queues:
            return None
        queued = [queue(z.detach(), update=True)[1].T for queue, z in zip(self.queues, embedded, strict=True)]
        if self.current_epoch < self.config.method.queue_start_epoch:
            return None
        return [self.prototypes(z, self.global_step) for z in queued]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["swav_queues"] = [bank_state(queue) for queue in self.queues]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        for queue, state in zip(self.queues, checkpoint.get("swav_queues", []), strict=False):
            restore_bank(queue, state)

    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        self.prototypes.normalize()
        global_views = [self.view(images), self.view(images)]
        features = self.backbone(global_views[0])
        embedded = [self.embed(features), self.embed(self.backbone(global_views[1]))]  # first: the coded one
        high = [self.prototypes(z, self.global_step) for z in embedded]
        low = [self.forward(view) for view in self.local_views(images)]
        loss = self.criterion(high, low, self.queue_scores(embedded))
        m = self.config.method
        if m.mixing == "imix":  # a mixed first crop predicts both instances' codes of the second
            weight, perm = mixing_weight(m.mixing_alpha), torch.randperm(len(images), device=features.device)
            mixed = self.forward(self.formatted(mix(global_views[0], weight, perm)))
            with torch.no_grad():
                c = self.criterion
                codes = sinkhorn(high[1].detach(), c.sinkhorn_iterations, c.sinkhorn_epsilon, gather_distributed=True)
            loss = self.with_mixing(loss, imix_partner_loss(c.subloss, mixed, codes, weight, perm), len(images))
        return loss, features
