"""Training on images through an encoder, for the protocols that cached features cannot serve: fine-tuning
(the whole encoder with a linear head) and DINOv2's linear evaluation (heads on a frozen encoder, fed
augmented images).

Each learning rate of a grid trains from the same start on the same seeded batches: SGD with momentum
0.9, cosine decay over the steps, no weight decay, the lr scaled by batch / 256 (lightly's probe setting).
With `finetune`, every lr trains its own copy of the encoder (in train mode: its batch norm adapts);
without it the encoder stays frozen in eval mode and the heads train side by side on its features of
each batch, one forward for all of them. The best validation top-1 wins (ties: the lower lr) and its
model is scored once on test (no refit: a refit would train the encoder again).
Augmentation: a random crop of the image padded by an eighth of its side on each side ("crop", the
default), with a horizontal flip ("crop-flip": natural images; a flip changes a digit), or "none"; drawn
per image from a seeded generator.

Example:
    >>> result = train_on_images(encoder, train, val, test, num_classes=10, lrs=(0.01, 0.1), finetune=True)
    >>> result.best_lr, result.test_top1
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate


@dataclass
class ImageTrainingResult:
    """The chosen lr (before the batch scaling), validation top-1 per lr, and the chosen model's test top-1."""

    best_lr: float
    val_top1: dict[float, float]
    test_top1: float


AUGMENTS = ("crop", "crop-flip", "none")


def augment(images: Tensor, generator: torch.Generator, flip: bool = True) -> Tensor:
    """A random crop of each image padded by an eighth of its side (reflected), and (`flip`) a horizontal flip;
    in the images' own dtype (uint8 stays uint8: the encoder is fed what the other protocols feed it)."""
    dtype = images.dtype
    images = images.float()
    n, _, height, width = images.shape
    pad = max(1, height // 8)
    padded = nn.functional.pad(images, (pad, pad, pad, pad), mode="reflect")
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    out = []
    for i in range(n):
        crop = padded[i, :, top[i] : top[i] + height, left[i] : left[i] + width]
        out.append(crop.flip(-1) if flip and flips[i] else crop)
    return torch.stack(out).to(dtype)  # crops and flips move pixels, never change them: exact


def collate(batch: Any) -> Any:
    """The project's datasets fetch a whole (images, labels) batch at once (`__getitems__`); others, items."""
    return batch if isinstance(batch, tuple) else default_collate(batch)


def loader(dataset: Dataset, batch_size: int, order: list[int] | None = None) -> DataLoader:
    """(images, labels) batches of the dataset, in `order` (default: as stored)."""
    return DataLoader(Subset(dataset, order) if order else dataset, batch_size=batch_size, collate_fn=collate)


def seeded_batches(dataset: Dataset, batch_size: int, generator: torch.Generator) -> DataLoader:
    """(images, labels) batches of the dataset in a seeded random order."""
    return loader(dataset, batch_size, torch.randperm(len(dataset), generator=generator).tolist())  # type: ignore[arg-type]


def top1(model: Callable[[Tensor], Tensor], dataset: Dataset, device: torch.device, batch_size: int = 256) -> float:
    """Top-1 of `model` on the dataset, in order, under no_grad."""
    right = total = 0
    with torch.no_grad():
        for images, labels in loader(dataset, batch_size):
            predicted = model(images.to(device)).argmax(1).cpu()
            right += int((predicted == labels).sum())
            total += len(labels)
    return right / max(total, 1)


class FunctionModule(nn.Module):
    """A plain callable (the raw-pixel floor's flattening) as a module without parameters."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


class Classifier(nn.Module):
    """Encoder and linear head: the dataset's images -> logits."""

    def __init__(self, encoder: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x).float())


def train_on_images(
    encoder: nn.Module | Callable[[Tensor], Tensor],
    train: Dataset,
    val: Dataset,
    test: Dataset,
    num_classes: int,
    lrs: tuple[float, ...],
    epochs: int = 5,
    batch_size: int = 128,
    finetune: bool = True,
    augmentation: str = "crop",
    seed: int = 0,
    device: torch.device | None = None,
) -> ImageTrainingResult:
    """Train per lr on `train`, choose on `val`, score the choice on `test` (module docstring).

    Args:
        encoder: the datasets' images (as the feature protocols feed it) -> (n, dim) features; copied, never
            changed.
        train, val, test: datasets of (image, label).
        num_classes: the head's outputs.
        lrs: the grid, each scaled by batch_size / 256.
        epochs, batch_size, seed: of every lr's training.
        finetune: train the encoder too (a copy per lr); else heads on the frozen encoder.
        augmentation: of each training batch: "crop" (shifted by up to an eighth of the side), "crop-flip"
            (and flipped: for natural images, not digits or text), "none".
        device: where it trains (default: the CPU).
    """
    if not lrs or min(lrs) <= 0:
        raise ValueError(f"training on images needs learning rates > 0, got {lrs}")
    if augmentation not in AUGMENTS:
        raise ValueError(f"augmentation {augmentation!r} is not one of {', '.join(AUGMENTS)}")
    device = device or torch.device("cpu")
    module = encoder if isinstance(encoder, nn.Module) else FunctionModule(encoder)
    base = copy.deepcopy(module).to(device).eval()
    with torch.no_grad():
        dim = base(next(iter(loader(train, 2)))[0].to(device)).shape[1]
    models = []
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        for _ in lrs:
            torch.manual_seed(seed)
            head = nn.Linear(dim, num_classes).to(device)
            models.append(Classifier(copy.deepcopy(base) if finetune else base, head))
    trainable = [m if finetune else m.head for m in models]
    groups = [{"params": p.parameters(), "lr": lr * batch_size / 256} for p, lr in zip(trainable, lrs, strict=True)]
    optimizer = torch.optim.SGD(groups, lr=0.0, momentum=0.9)
    steps = epochs * max(1, -(-len(train) // batch_size))  # type: ignore[arg-type]
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    for model in models:
        model.train(finetune)
    for _ in range(epochs):
        for images, labels in seeded_batches(train, batch_size, generator):
            if len(images) < 2 and finetune:  # a last batch of one: batch norm cannot train on it
                continue
            x = augment(images, generator, flip=augmentation == "crop-flip") if augmentation != "none" else images
            x = x.to(device)
            labels = labels.to(device)
            if finetune:  # each copy its own forward
                loss = sum(nn.functional.cross_entropy(m(x), labels) for m in models)
            else:  # one frozen forward serves every head
                with torch.no_grad():
                    features = base(x).float()
                loss = sum(nn.functional.cross_entropy(m.head(features), labels) for m in models)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            optimizer.step()
            scheduler.step()
    for model in models:
        model.eval()
    val_top1 = {lr: top1(model, val, device) for lr, model in zip(lrs, models, strict=True)}
    best = max(val_top1, key=lambda lr: (val_top1[lr], -lr))
    return ImageTrainingResult(best, val_top1, top1(models[lrs.index(best)], test, device))


__all__ = ["AUGMENTS", "ImageTrainingResult", "augment", "train_on_images"]
