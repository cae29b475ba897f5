"""DINOv2's linear evaluation: linear heads on the frozen encoder, trained on augmented train images, one
per learning rate of `--sgd-lr`, side by side on the same batches (one encoder forward for all of
them), the lr chosen on validation (`ssl_coded.eval.image_training`). Row: `linear_aug_top1`,
`linear_aug_lr`; every lr's validation top-1 in `details`."""

from __future__ import annotations

from ssl_coded.eval.protocols.base import Outcome, Task
from ssl_coded.eval.protocols.finetune import run_images as finetune_images
from torch import nn
from torch.utils.data import Dataset


def run_images(encoder: nn.Module, splits: dict[str, Dataset], task: Task) -> Outcome:
    return finetune_images(encoder, splits, task, finetune=False)
