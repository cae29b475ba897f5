"""The lowest value an SSL loss can take: what `CodedSmoothingHook.regularize(loss, floor)` measures the
penalty from, so that one weight is the same share of every method's loss.

Most losses (InfoNCE, VICReg, Barlow Twins, SwAV, a reconstruction error) are at least 0; a negative cosine
similarity (BYOL, SimSiam) is at least -1 (`NEGATIVE_COSINE_FLOOR`). DINO's loss is a cross-entropy
against the teacher's distributions, so it never goes below their entropy, which moves with the teacher,
its centre and its temperature schedule: `dino_loss_floor` measures it each step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

NEGATIVE_COSINE_FLOOR = -1.0


@torch.no_grad()
def dino_loss_floor(criterion: Any, teacher_out: Sequence[Tensor] | Tensor, epoch: int = 0) -> Tensor:
    """The mean entropy of the teacher's centred, sharpened distributions: the lowest value DINO's loss
    (a cross-entropy against them) can take this step.

    Call it before the loss, which moves the centre. `criterion` is lightly's `DINOLoss` or anything with
    its attributes (`center`, `teacher_temp`, `teacher_temp_schedule`, `warmup_teacher_temp_epochs`).

    Args:
        criterion: the DINO loss module.
        teacher_out: the teacher's outputs, one (n, d) tensor per global crop, or one (crops, n, d) tensor.
        epoch: the epoch the loss is called with (the teacher's temperature warms up over epochs).

    Example:
        >>> teacher_out = [model.forward_teacher(view) for view in views[:2]]
        >>> floor = dino_loss_floor(criterion, teacher_out, epoch)
        >>> loss = hook.regularize(criterion(teacher_out, student_out, epoch=epoch), floor)
    """
    log_p = dino_teacher_log_probabilities(criterion, teacher_out, epoch)
    return -(log_p.exp() * log_p).sum(-1).mean()


@torch.no_grad()
def dino_teacher_log_probabilities(criterion: Any, teacher_out: Sequence[Tensor] | Tensor, epoch: int = 0) -> Tensor:
    """(crops, n, d) log of the teacher's centred, sharpened distributions, as DINO's loss takes them."""
    logits = teacher_out if isinstance(teacher_out, Tensor) else torch.stack(list(teacher_out))
    warming = epoch < criterion.warmup_teacher_temp_epochs
    temperature = criterion.teacher_temp_schedule[epoch] if warming else criterion.teacher_temp
    return torch.log_softmax((logits - criterion.center) / temperature, dim=-1)
