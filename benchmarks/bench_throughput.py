"""Pretraining throughput: the SimCLR recipe (coded-smoothing off) against a plain lightly loop.

The plain loop is what a lightly user writes first: per-image torchvision augmentations
(lightly's SimCLRTransform on PIL images, in DataLoader workers), fp32, NCHW, the same backbone,
head, loss, optimiser and batch. The recipe runs through `ssl_coded.training.loop.pretrain` (Lightning,
batched augmentations on the device, the recipe's precision and memory format). Both train the
same number of epochs on the same images; the script prints training images per second (the
median over epochs, validation excluded) and the test kNN top-1 (k=20, T=0.07) each reaches, so
the speed is compared at equal accuracy.

Run: python -m benchmarks.bench_throughput [--recipe simclr-fashion-mnist --epochs 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

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
from ssl_coded.search import calibration
from ssl_coded.search.knn import knn_predict
from ssl_coded.training.backbones import build_backbone
from ssl_coded.training.config import RecipeConfig
from ssl_coded.training.loop import pretrain
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


def plain_lightly_loop(
    config: RecipeConfig, splits: Splits, epochs: int, workers: int
) -> tuple[list[float], nn.Module]:
    """Images per second of each epoch, and the trained backbone."""
    torch.manual_seed(config.seed)
    backbone, dim = build_backbone(
        config.model.backbone, splits.channels, splits.image_size, width=config.model.width, pool=config.model.pool
    )
    model = nn.Sequential(backbone, SimCLRProjectionHead(dim, config.method.hidden_dim, config.method.projection_dim))
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
    loader = DataLoader(
        PILViews(splits.train.images, splits.train.labels, transform),
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

    plain_rates, plain_backbone = plain_lightly_loop(config, splits, args.epochs, args.workers)
    plain_accuracy = knn_top1(plain_backbone, splits)
    timer = EpochTimer()
    summary = pretrain(config, callbacks=[timer])
    ours_accuracy = summary["rows"]["encoder"]["knn_dino_top1"]

    plain, ours = statistics.median(plain_rates), statistics.median(timer.rates)
    shape = f"{len(splits.train)} train images, batch {config.trainer.batch_size}, {args.epochs} epochs"
    print(f"\n{args.recipe}: {shape}, {torch.get_num_threads()} threads; plain loop with {args.workers} workers")
    print("| pipeline | images/s (median over epochs) | test kNN top-1 (k=20, T=0.07) |")
    print("|---|---|---|")
    print(f"| plain lightly loop (fp32, per-image PIL augmentations, NCHW) | {plain:.0f} | {plain_accuracy:.4f} |")
    print(
        f"| ssl-coded recipe ({summary.get('precision', config.trainer.precision)}, batched augmentations"
        f"{', channels_last' if config.trainer.channels_last else ''}) | {ours:.0f} | {ours_accuracy:.4f} |"
    )
    print(f"throughput ratio: {ours / plain:.2f}x")
    print(f"calibration: {calibration.describe()}")


if __name__ == "__main__":
    main()
