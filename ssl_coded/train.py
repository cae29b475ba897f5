"""Pretraining with PyTorch Lightning: run directory, checkpoints, metrics, plots, resume.

A run directory `out_dir/name/` holds:
    config.yaml          the resolved recipe (every default filled in)
    checkpoints/         last.ckpt, and best.ckpt by validation kNN top-1 (written atomically)
    metrics.csv          Lightning's CSV log (per step and per epoch)
    curves.png           training loss and validation kNN top-1 per epoch
    summary.json         test kNN top-1 (both presets) of the best checkpoint beside the
                         raw-pixel and random-init floors, wall time, epochs

Example:
    >>> summary = pretrain(load_config("simclr-digits"))
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch import Tensor

from ssl_coded.config import ConfigError, RecipeConfig, to_yaml
from ssl_coded.datasets import Splits, TensorImageDataset, load_splits
from ssl_coded.hardware import FALLBACK_WARNING, training_precision
from ssl_coded.io import atomic_write, write_json, write_text
from ssl_coded.knn import PRESETS, knn_predict
from ssl_coded.methods import get_method
from ssl_coded.methods.base import SSLMethod


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message names the fix."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed (a crash never leaves half a file),
    and loaded with torch.load(weights_only=True) (never unpickling arbitrary objects)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint_file(path, map_location or "cpu")  # Lightning moves it where it belongs


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {path} does not exist; train first or give the right run directory"
        ) from None
    except Exception as error:  # a truncated zip, a pickle of foreign objects, ...
        reason = str(error).splitlines()[0][:160]
        raise CheckpointError(f"checkpoint {path} cannot be read ({reason}); delete it or retrain") from error


class SplitsDataModule(pl.LightningDataModule):
    def __init__(self, splits: Splits, config: RecipeConfig) -> None:
        super().__init__()
        self.splits, self.config = splits, config

    def train_dataloader(self):
        c = self.config
        return self.splits.train.loader(
            c.trainer.batch_size, shuffle=True, drop_last=True, num_workers=c.data.num_workers
        )

    def val_dataloader(self):
        return self.splits.val.loader(512, num_workers=self.config.data.num_workers)

    def bank_loader(self):
        return self.splits.train.subset(self.config.eval.bank_size, seed=self.config.seed).loader(512)


def build_method(config: RecipeConfig, splits: Splits) -> SSLMethod:
    method_cls = get_method(config.method.name)
    return method_cls(
        config,
        num_classes=splits.num_classes,
        in_channels=splits.channels,
        image_size=splits.image_size,
        mean=splits.mean,
        std=splits.std,
    )


def run_dir(config: RecipeConfig) -> Path:
    return Path(config.out_dir) / config.name


def pretrain(config: RecipeConfig, resume: bool = False, callbacks: list[pl.Callback] | None = None) -> dict[str, Any]:
    """Train from a recipe; returns the summary (also written to the run directory).

    Args:
        config: the resolved recipe.
        resume: continue from `checkpoints/last.ckpt` of the run directory.
        callbacks: extra Lightning callbacks.
    """
    out = run_dir(config)
    last = out / "checkpoints" / "last.ckpt"
    if resume:
        if not last.is_file():
            raise CheckpointError(f"--resume: no checkpoint at {last}; run without --resume to start")
        checked = load_checkpoint_file(last)
        if checked.get("recipe_method") != config.method.name:
            raise CheckpointError(
                f"--resume: {last} was written by method {checked.get('recipe_method')!r}, not "
                f"{config.method.name!r}; use the recipe it came from or another run name"
            )
    elif last.exists():
        raise CheckpointError(f"run directory {out} already has checkpoints; pass --resume, or set name=<new name>")
    if config.trainer.threads:
        torch.set_num_threads(config.trainer.threads)
    asked = config.trainer.precision
    precision = training_precision(asked, config.trainer.accelerator)
    config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, precision=precision))
    pl.seed_everything(config.seed, workers=True, verbose=False)
    splits = load_splits(config.data)
    method = build_method(config, splits)
    write_text(out / "config.yaml", to_yaml(config))

    checkpoint = RecipeCheckpoint(
        dirpath=out / "checkpoints", filename="best", monitor=method.monitor, mode="max", save_last=True
    )
    try:
        trainer = make_trainer(config, out, checkpoint, callbacks)
    except MisconfigurationException as error:
        raise ConfigError(f"trainer settings: {str(error).splitlines()[0]}") from error
    if precision != asked and trainer.global_rank == 0:  # once the run is sure to start: bad input stays one line
        print(FALLBACK_WARNING, file=sys.stderr)
    start = time.perf_counter()
    trainer.fit(method, datamodule=SplitsDataModule(splits, config), ckpt_path=str(last) if resume else None)
    seconds = time.perf_counter() - start
    if trainer.global_rank != 0:
        return {}
    merge_metrics(out)
    summary = summarise(config, splits, method, checkpoint, seconds) | {"precision": precision}
    if precision != asked:  # config.yaml holds what trained; the recipe asked for this
        summary["precision_asked"] = asked
    write_json(out / "summary.json", summary)
    write_curves(out)
    return summary


def make_trainer(
    config: RecipeConfig, out: Path, checkpoint: ModelCheckpoint, callbacks: list[pl.Callback] | None
) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=config.trainer.max_epochs,
        accelerator=config.trainer.accelerator,
        devices=config.trainer.devices,
        num_nodes=config.trainer.num_nodes,
        strategy=config.trainer.strategy,
        precision=config.trainer.precision,
        limit_train_batches=config.trainer.limit_train_batches,
        log_every_n_steps=config.trainer.log_every_n_steps,
        check_val_every_n_epoch=config.eval.every_n_epochs,
        num_sanity_val_steps=0,
        logger=CSVLogger(out, name="logs"),  # logs/version_<n>/: one per (resumed) session
        callbacks=[checkpoint, *(callbacks or [])],
        plugins=[AtomicCheckpointIO()],
        deterministic=False,
        enable_model_summary=False,
    )


class RecipeCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that stamps the method name (a resume with another recipe is refused) and the
    resolved recipe (a checkpoint alone is enough to rebuild its model for evaluation)."""

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint["recipe_method"] = pl_module.config.method.name
        checkpoint["recipe_yaml"] = to_yaml(pl_module.config)
        super().on_save_checkpoint(trainer, pl_module, checkpoint)


@torch.no_grad()
def extract(backbone: torch.nn.Module, method: SSLMethod, dataset: TensorImageDataset) -> tuple[Tensor, Tensor]:
    backbone.eval()
    features = [backbone(method.to_input(images.to(method.device))).float().cpu() for images, _ in dataset.loader(512)]
    return torch.cat(features), dataset.labels


def knn_scores(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], num_classes: int) -> dict[str, float]:
    scores = {}
    for preset, (k, temperature) in PRESETS.items():
        ranked = knn_predict(train[0], train[1], test[0], num_classes, k, temperature)
        scores[preset] = float((ranked[:, 0] == test[1]).float().mean())
    return scores


def summarise(
    config: RecipeConfig, splits: Splits, method: SSLMethod, checkpoint: ModelCheckpoint, seconds: float
) -> dict[str, Any]:
    """Test kNN of the best checkpoint beside the raw-pixel and random-init floors."""
    best = checkpoint.best_model_path or checkpoint.last_model_path
    if best:
        method.load_state_dict(load_checkpoint_file(best)["state_dict"])
    encoder = knn_scores(
        extract(method.backbone, method, splits.train),
        extract(method.backbone, method, splits.test),
        splits.num_classes,
    )
    floors = floor_scores(config, splits, method.device) if config.eval.floors else {}
    return {
        "recipe": config.name,
        "method": config.method.name,
        "coded": config.coded.enabled or config.method.regularizer == "coded",
        "epochs": config.trainer.max_epochs,
        "seconds": round(seconds, 1),
        "best_checkpoint": str(best),
        f"best_{method.monitor}": float(checkpoint.best_model_score)
        if checkpoint.best_model_score is not None
        else None,
        "test_knn_top1": encoder,
        **method.test_metrics(splits.test),
        "floors": floors,
    }


def floor_scores(config: RecipeConfig, splits: Splits, device: torch.device) -> dict[str, dict[str, float]]:
    """Test kNN of the same architecture at random initialisation and of raw pixels."""
    pl.seed_everything(config.seed, verbose=False)
    random_method = build_method(config, splits).to(device)
    random_init = knn_scores(
        extract(random_method.backbone, random_method, splits.train),
        extract(random_method.backbone, random_method, splits.test),
        splits.num_classes,
    )
    raw = knn_scores(
        (splits.train.images.flatten(1).float(), splits.train.labels),
        (splits.test.images.flatten(1).float(), splits.test.labels),
        splits.num_classes,
    )
    return {"raw_pixels": raw, "random_init": random_init}


def merge_metrics(out: Path) -> None:
    """logs/version_*/metrics.csv -> metrics.csv: a resumed session replaces the rows of the
    epochs it redid (those after the checkpoint it started from)."""
    versions = sorted((out / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    rows: list[dict[str, str]] = []
    fieldnames: list[str] = []
    for path in versions:
        with path.open() as handle:
            new = list(csv.DictReader(handle))
        if new:
            first_epoch = min((int(float(r["epoch"])) for r in new if r.get("epoch")), default=0)
            rows = [r for r in rows if r.get("epoch") and int(float(r["epoch"])) < first_epoch] + new
            fieldnames += [key for key in new[0] if key not in fieldnames]
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "metrics.csv", buffer.getvalue())


def read_epoch_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(epoch, value), ...]} from Lightning's metrics.csv (epoch-level rows)."""
    series: dict[str, dict[int, list[float]]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                series.setdefault(key, {}).setdefault(epoch, []).append(float(value))
    return {key: sorted((e, sum(v) / len(v)) for e, v in per_epoch.items()) for key, per_epoch in series.items()}


def write_curves(out: Path) -> None:
    metrics = out / "metrics.csv"
    if not metrics.is_file():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_epoch_metrics(metrics)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in ("train_loss", "train_coded_penalty"):
        if key in series:
            axes[0].plot([e + 1 for e, _ in series[key]], [v for _, v in series[key]], label=key)
    if "val_knn_top1" in series:
        axes[1].plot([e + 1 for e, _ in series["val_knn_top1"]], [v for _, v in series["val_knn_top1"]], marker="o")
    axes[0].set(xlabel="epoch", ylabel="loss", title="training loss (mean over logged steps)")
    axes[0].legend()
    axes[1].set(xlabel="epoch", ylabel="top-1", title="validation kNN top-1")
    fig.tight_layout()
    atomic_write(out / "curves.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def format_summary(summary: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    """A Markdown table: floors, this run, and optionally the same recipe with coded-smoothing off."""
    lines = ["| encoder | kNN top-1 k=20 T=0.07 | kNN top-1 k=200 T=0.1 | train s |", "|---|---|---|---|"]
    floors = summary["floors"]
    for name, row in (("raw pixels", floors.get("raw_pixels")), ("random init", floors.get("random_init"))):
        if row is None:  # eval.floors=false
            continue
        lines.append(f"| {name} | {row['dino']:.4f} | {row['instdisc']:.4f} | - |")
    for run in filter(None, (baseline, summary)):
        label = f"{run['method']}" + (" + coded" if run["coded"] else "")
        row = run["test_knn_top1"]
        lines.append(f"| {label} | {row['dino']:.4f} | {row['instdisc']:.4f} | {run['seconds']:.0f} |")
    return "\n".join(lines)
