"""MoCo v2 from lightly's projection head, momentum utilities and NT-Xent loss with a memory bank,
as lightly's example loop (`examples/pytorch/moco.py`) composes them."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import MoCoProjectionHead
from torch import Tensor

from ssl_coded.training.methods.base import MomentumMethod
from ssl_coded.training.methods.memory import bank_state, restore_bank
from ssl_coded.training.mixing import imix_contrastive_loss, mix, mixing_weight


class MoCo(MomentumMethod):
    """A query view through the online network, a key view through its EMA copy, InfoNCE against the
    key and a bank of earlier keys (per process under DDP, as lightly's loss keeps it).

    Coded branch placements: "embedding" (default; the projection head runs on coded backbone features)
    or "input" (the online backbone runs on coded images). The momentum copies are made before the hook
    is attached and run under no_grad: the coded branch never touches them. `method.mixing=imix` adds
    i-Mix's loss (Lee et al. 2021, its MoCo form): a mixed query finds both instances' keys among the
    batch's keys and the queue (one more online pass per step).
    """

    placements: ClassVar[dict[str, str]] = {"embedding": "projection_head", "input": "backbone"}

    def __init__(self, config, **data) -> None:
        super().__init__(config, **data)
        m = config.method
        self.projection_head = MoCoProjectionHead(self.feature_dim, m.hidden_dim, m.projection_dim)
        self.copy_for_momentum()
        self.criterion = NTXentLoss(temperature=m.temperature, memory_bank_size=(m.memory_bank_size, m.projection_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.projection_head(self.backbone(x))

    # lightly keeps the queue out of the state_dict; a resume continues it instead of starting a random one
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["memory_bank"] = bank_state(self.criterion.memory_bank)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        restore_bank(self.criterion.memory_bank, checkpoint.get("memory_bank", {}))

    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        self.update_momentum_copies()
        query_view, key_view = self.view(images), self.view(images)
        features = self.backbone(query_view)
        query, key = self.projection_head(features), self.forward_momentum(key_view)
        negatives = (
            self.queued_keys() if self.config.method.mixing == "imix" else None
        )  # before the loss adds this batch
        loss = self.criterion(query, key)
        if negatives is not None:
            m = self.config.method
            weight, perm = mixing_weight(m.mixing_alpha), torch.randperm(len(images), device=key.device)
            mixed = self.forward(self.formatted(mix(query_view, weight, perm)))
            loss = self.with_mixing(
                loss, imix_contrastive_loss(mixed, key, weight, perm, m.temperature, negatives), len(images)
            )
        return loss, features

    def queued_keys(self) -> Tensor:
        """The (k, d) keys in the queue now: the negatives of this step's loss."""
        # a copy: lightly's loss writes this batch's keys into the buffer in place; stored (size, dim)
        return self.criterion.memory_bank.bank.detach().clone()
