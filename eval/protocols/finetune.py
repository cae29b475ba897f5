"""The fine-tuning protocol: the whole encoder with a linear head, trained on augmented train images for a
few epochs, one copy per learning rate of a grid, the lr chosen on validation, the chosen model scored on
test (`ssl_coded.eval.image_training`). Row: `finetune_top1`, `finetune_lr`; every lr's validation top-1
in `details`. The random-init floor fine-tuned is training from scratch for the same epochs."""

from __future__ import annotations

from ssl_coded.eval.image_training import train_on_images
from ssl_coded.eval.protocols.base import Outcome, Task
from torch import nn
from torch.utils.data import Dataset


def run_images(encoder: nn.Module, splits: dict[str, Dataset], task: Task, finetune: bool = True) -> Outcome:
    s = task.settings
    lrs = s.finetune_lrs if finetune else s.sgd_lrs
    result = train_on_images(
        encoder, splits["train"], splits["val"], splits["test"], task.num_classes, lrs, s.image_epochs,
        finetune=finetune, augmentation=s.image_augment, seed=task.seed, device=task.device,
    )  # fmt: skip
    name = "finetune" if finetune else "linear_aug"
    grid = [{"lr": lr, "val_top1": top1} for lr, top1 in result.val_top1.items()]
    return Outcome({f"{name}_top1": result.test_top1, f"{name}_lr": result.best_lr}, extra={"val_top1": grid})
