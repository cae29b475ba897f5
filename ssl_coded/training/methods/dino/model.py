"""DINO from lightly's projection head (with its last-layer freeze), loss (centring, teacher temperature
warm-up) and momentum utilities, as lightly's example loop (`examples/pytorch/dino.py`) composes them;
multi-crop from the batched augmentation (local crops sampled at their own size in one pass)."""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import Tensor

from ssl_coded.loss_floors import dino_loss_floor, dino_teacher_log_probabilities
from ssl_coded.training.methods.base import MultiCropMethod
from ssl_coded.training.mixing import imix_partner_loss, mix, mixing_weight


def soft_cross_entropy(log_q: Tensor, p: Tensor) -> Tensor:
    """Mean cross-entropy of distributions p (rows) under log-probabilities log_q."""
    return -(p * log_q).sum(-1).mean()


class DINO(MultiCropMethod):
    """A student (backbone + head) matches, on every crop, an EMA teacher's centred, sharpened output on
    the two global crops. Local crops (`method.num_local_crops`) need a backbone that takes any image
    size (the CNNs; not the ViT, whose position embeddings fix it).

    Coded branch placements: "embedding" (default; the student's head runs on coded backbone features of
    the first global crop) or "input". The teacher is a copy made before the hook, run under no_grad:
    never coded (hook `student_head`, never `teacher_head`). `method.mixing=imix` adds i-Mix's loss in its
    mixture-of-losses form (one more student pass per step).
    """

    placements: ClassVar[dict[str, str]] = {"embedding": "student_head", "input": "backbone"}

    def __init__(self, config, **data) -> None:
        super().__init__(config, **data)
        m = config.method
        head = (self.feature_dim, m.hidden_dim, m.bottleneck_dim, m.output_dim)
        self.student_head = DINOProjectionHead(*head, freeze_last_layer=m.freeze_last_layer)
        self.teacher_backbone = copy.deepcopy(self.backbone)
        self.teacher_head = DINOProjectionHead(*head)
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)
        self.criterion = DINOLoss(
            output_dim=m.output_dim,
            warmup_teacher_temp=m.warmup_teacher_temperature,
            teacher_temp=m.teacher_temperature,
            warmup_teacher_temp_epochs=m.warmup_teacher_temperature_epochs,
            student_temp=m.student_temperature,
            center_momentum=m.center_momentum,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.student_head(self.backbone(x))

    @torch.no_grad()
    def forward_teacher(self, x: Tensor) -> Tensor:
        return self.teacher_head(self.teacher_backbone(x))

    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        momentum = self.ema_momentum()
        update_momentum(self.backbone, self.teacher_backbone, m=momentum)
        update_momentum(self.student_head, self.teacher_head, m=momentum)
        global_views = [self.view(images), self.view(images)]
        local_views = self.local_views(images)
        teacher_out = [self.forward_teacher(view) for view in global_views]
        features = self.backbone(global_views[0])
        student_out = [self.student_head(features)] + [self.forward(v) for v in global_views[1:] + local_views]
        # both before the loss moves its centre: the floor `coded.weighting=loss` measures from, and i-Mix's targets
        self._floor = dino_loss_floor(self.criterion, teacher_out, self.current_epoch)
        log_p = dino_teacher_log_probabilities(self.criterion, teacher_out, self.current_epoch)
        loss = self.criterion(teacher_out, student_out, epoch=self.current_epoch)
        m = self.config.method
        if m.mixing == "imix":  # a mixed first crop matches both instances' teacher distributions on the second
            weight, perm = mixing_weight(m.mixing_alpha), torch.randperm(len(images), device=features.device)
            mixed = self.forward(self.formatted(mix(global_views[0], weight, perm)))
            student = torch.log_softmax(mixed / self.criterion.student_temp, dim=-1)
            imix = imix_partner_loss(soft_cross_entropy, student, log_p[1].exp(), weight, perm)
            loss = self.with_mixing(loss, imix, len(images))
        return loss, features

    def current_loss_floor(self) -> Tensor:
        return self._floor

    def on_after_backward(self) -> None:
        # as lightly's loop: the head's last layer learns only after method.freeze_last_layer epochs
        self.student_head.cancel_last_layer_gradients(current_epoch=self.current_epoch)
