"""Pretraining throughput: the SimCLR recipe (coded-smoothing off) against two lightly loops.

- The plain loop is what a lightly user writes first: per-image torchvision augmentations (lightly's
  SimCLRTransform on PIL images, in DataLoader workers), fp32, NCHW.
- The loop written well: the images decoded once into uint8 tensors, the same augmentations per image
  on those tensors (torchvision.transforms.v2) in the same DataLoader workers, bf16 autocast where this
  machine's calibration picks bf16 for the recipe (`ssl_coded.training.precision`), channels_last where
  the recipe uses it. What is left between it and the recipe is engineering, not precision.
Both share the backbone, head, loss, optimiser, schedule and batch with the recipe, which runs through
`ssl_coded.training.loop.pretrain` (Lightning, batched augmentations on the device). All train the same
number of epochs on the same images; the script prints training images per second (the median over
epochs, validation excluded), the test kNN top-1 (k=20, T=0.07) each reaches, so the speed is compared
at equal accuracy, and the recipe's ratio to each loop. Then feature extraction: the project's extractor
(`ssl_coded.data.encode.encoded_batches`, what evaluation and the run summary use) against a plain torch
loop over the same in-memory images (no_grad, the same batch), medians of interleaved rounds.

Run: python -m benchmarks.bench_throughput [--recipe simclr-fashion-mnist --epochs 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms import SimCLRTransform
from lightly.utils.scheduler import CosineWarmupScheduler
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ssl_coded.data import Splits, load_splits
from ssl_coded.data.encode import encoded_batches
from ssl_coded.search import calibration
from ssl_coded.search.knn import knn_predict
from ssl_coded.training.backbones import build_backbone
from ssl_coded.training.config import RecipeConfig
from ssl_coded.training.loop import pretrain
from ssl_coded.training.precision import training_precision
from ssl_coded.training.recipes import load_config


class PILViews(Dataset):
    """uint8 tensors as PIL images through a per-image lightly transform (two views)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: SimCLRTransform) -> None:
        self.images, self.labels, self.transform = images.numpy(), labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        pil = Image.fromarray(image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0)))
        return self.transform(pil), self.labels[index]


class TensorViews(Dataset):
    """uint8 tensors, decoded once, through per-image torchvision v2 augmentations (two views)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        return (self.transform(image), self.transform(image)), self.labels[index]


def tensor_transform(config: RecipeConfig, splits: Splits) -> Any:
    """lightly's SimCLRTransform as the recipe sets it, on uint8 tensors (torchvision.transforms.v2)."""
    from torchvision.transforms import v2

    a = config.augment
    jitter = v2.ColorJitter(brightness=a.brightness, contrast=a.contrast)
    return v2.Compose(
        [
            v2.RandomResizedCrop(splits.image_size, scale=(a.crop_scale[0], 1.0), antialias=True),
            v2.RandomHorizontalFlip(p=a.horizontal_flip),
            v2.RandomApply([jitter], p=0.8),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(splits.mean), std=list(splits.std)),
        ]
    )


def lightly_loop(
    config: RecipeConfig, splits: Splits, epochs: int, workers: int, well: bool = False
) -> tuple[list[float], nn.Module]:
    """Images per second of each epoch, and the trained backbone: the plain loop, or (`well`) the loop
    written well (tensors decoded once, bf16 autocast where calibrated, channels_last as the recipe)."""
    torch.manual_seed(config.seed)
    backbone, dim = build_backbone(
        config.model.backbone, splits.channels, splits.image_size, width=config.model.width, pool=config.model.pool
    )
    model = nn.Sequential(backbone, SimCLRProjectionHead(dim, config.method.hidden_dim, config.method.projection_dim))
    precision = training_precision(config.trainer.precision, "cpu") if well else "32-true"
    channels_last = well and config.trainer.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    a = config.augment
    transform = SimCLRTransform(
        input_size=splits.image_size,
        cj_prob=0.8,
        cj_bright=a.brightness,
        cj_contrast=a.contrast,
        cj_sat=0.0,
        cj_hue=0.0,
        min_scale=a.crop_scale[0],
        random_gray_scale=0.0,
        gaussian_blur=0.0,
        hf_prob=a.horizontal_flip,
        normalize={"mean": list(splits.mean), "std": list(splits.std)},
    )
    batch_size = config.trainer.batch_size
    views = TensorViews(splits.train.images, splits.train.labels, tensor_transform(config, splits)) if well else None
    loader = DataLoader(
        views or PILViews(splits.train.images, splits.train.labels, transform),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    criterion = NTXentLoss(temperature=config.method.temperature)
    lr = config.optim.lr * batch_size / 256  # the recipe's scaling and schedule, per step
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.optim.weight_decay)
    scheduler = CosineWarmupScheduler(
        optimizer, warmup_epochs=config.optim.warmup_epochs * len(loader), max_epochs=epochs * len(loader)
    )
    rates = []
    for _ in range(epochs):
        model.train()
        start, seen = time.perf_counter(), 0
        for (view0, view1), _ in loader:
            if channels_last:
                view0, view1 = (v.contiguous(memory_format=torch.channels_last) for v in (view0, view1))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
                loss = criterion(model(view0), model(view1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(view0)
        rates.append(seen / (time.perf_counter() - start))
    return rates, backbone


class EpochTimer(pl.Callback):
    """Training images per second of each epoch, from its start to its last training batch
    (Lightning runs validation inside the epoch, before on_train_epoch_end: excluded)."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start, self.seen = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.seen += len(batch[1])
        self.last = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.rates.append(self.seen / (self.last - self.start))


@torch.no_grad()
def knn_top1(backbone: nn.Module, splits: Splits) -> float:
    backbone.eval()
    mean = torch.tensor(splits.mean).view(1, -1, 1, 1)
    std = torch.tensor(splits.std).view(1, -1, 1, 1)

    def features(images: torch.Tensor) -> torch.Tensor:
        batches = images.split(1024)
        return torch.cat([backbone((b.float() / 255 - mean) / std) for b in batches]).float()

    train, test = features(splits.train.images), features(splits.test.images)
    ranked = knn_predict(train, splits.train.labels, test, splits.num_classes, 20, 0.07)
    return float((ranked[:, 0] == splits.test.labels).float().mean())


def extraction_ratio(backbone: nn.Module, splits: Splits, rounds: int = 3, batch_size: int = 512) -> tuple[float, ...]:
    """(plain loop seconds, extractor seconds, plain / extractor) for the train images' features, medians of
    interleaved rounds: the project's extractor against `backbone(normalised batch)` under no_grad."""
    backbone.eval()
    mean = torch.tensor(splits.mean).view(1, -1, 1, 1)
    std = torch.tensor(splits.std).view(1, -1, 1, 1)

    def encode(images: torch.Tensor) -> torch.Tensor:
        return backbone((images.float() / 255 - mean) / std).float()

    def plain() -> None:
        with torch.no_grad():
            for batch in splits.train.images.split(batch_size):
                encode(batch)

    def ours() -> None:
        for _ in encoded_batches(encode, splits.train, batch_size):
            pass

    times: dict[str, list[float]] = {"plain": [], "ours": []}
    for _ in range(rounds):
        for name, run in (("plain", plain), ("ours", ours)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    plain_s, ours_s = statistics.median(times["plain"]), statistics.median(times["ours"])
    return plain_s, ours_s, plain_s / ours_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="simclr-fashion-mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the plain loop")
    parser.add_argument("--out-dir", default="runs/bench-throughput")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. data.max_train=20000")
    args = parser.parse_args()

    config = load_config(args.recipe, [*args.overrides, f"trainer.max_epochs={args.epochs}", "coded.enabled=false"])
    config.out_dir, config.name = args.out_dir, f"{config.name}-{int(time.time())}"
    splits = load_splits(config.data)

    plain_rates, plain_backbone = lightly_loop(config, splits, args.epochs, args.workers)
    plain_accuracy = knn_top1(plain_backbone, splits)
    well_rates, well_backbone = lightly_loop(config, splits, args.epochs, args.workers, well=True)
    well_accuracy = knn_top1(well_backbone, splits)
    timer = EpochTimer()
    summary = pretrain(config, callbacks=[timer])
    ours_accuracy = summary["rows"]["encoder"]["knn_dino_top1"]

    plain, well, ours = (statistics.median(r) for r in (plain_rates, well_rates, timer.rates))
    precision = summary.get("precision", config.trainer.precision)
    layout = ", channels_last" if config.trainer.channels_last else ""
    shape = f"{len(splits.train)} train images, batch {config.trainer.batch_size}, {args.epochs} epochs"
    print(f"\n{args.recipe}: {shape}, {torch.get_num_threads()} threads; lightly loops with {args.workers} workers")
    print("| pipeline | images/s (median over epochs) | test kNN top-1 (k=20, T=0.07) |")
    print("|---|---|---|")
    print(f"| plain lightly loop (fp32, per-image PIL augmentations, NCHW) | {plain:.0f} | {plain_accuracy:.4f} |")
    print(f"| lightly loop written well (tensors once, {precision}{layout}) | {well:.0f} | {well_accuracy:.4f} |")
    print(f"| ssl-coded recipe ({precision}, batched augmentations{layout}) | {ours:.0f} | {ours_accuracy:.4f} |")
    print(f"throughput ratio: {ours / plain:.2f}x the plain loop, {ours / well:.2f}x the loop written well")
    plain_s, ours_s, ratio = extraction_ratio(well_backbone, splits)
    print(
        f"feature extraction of {len(splits.train)} images: plain torch loop {plain_s:.2f} s, "
        f"the project's extractor {ours_s:.2f} s ({ratio:.2f}x the plain loop's speed)"
    )
    print(f"calibration: {calibration.describe()}")


if __name__ == "__main__":
    main()
