"""The summary of a pretraining run: test kNN of its best checkpoint beside the raw-pixel and
random-init floors, by the same search and metric names as `ssl-coded eval` (`ssl_coded.knn`)."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor

from ssl_coded.knn import knn_metrics
from ssl_coded.training.checkpoints import load_checkpoint_file
from ssl_coded.training.config import RecipeConfig
from ssl_coded.training.datasets import Splits, TensorImageDataset
from ssl_coded.training.methods import SSLMethod, build_random_init

ENCODER, RANDOM_INIT, RAW_PIXELS = "encoder", "random init", "raw pixels"  # the row names of results.json too


@torch.no_grad()
def extract(method: SSLMethod, dataset: TensorImageDataset) -> Tensor:
    method.eval()
    return torch.cat([method.backbone(method.to_input(x.to(method.device))).float() for x, _ in dataset.loader(512)])


def knn_row(method: SSLMethod, splits: Splits) -> dict[str, float]:
    return knn_metrics(
        extract(method, splits.train), splits.train.labels, extract(method, splits.test), splits.test.labels,
        splits.num_classes,
    )  # fmt: skip


def summarise(
    config: RecipeConfig, splits: Splits, method: SSLMethod, checkpoint: ModelCheckpoint, seconds: float
) -> dict[str, Any]:
    """Test kNN (`rows`: encoder and floors, as in results.json) of the best checkpoint, and the run's facts."""
    best = checkpoint.best_model_path or checkpoint.last_model_path
    if best:
        method.load_state_dict(load_checkpoint_file(best)["state_dict"])
    rows = {ENCODER: knn_row(method, splits)}
    if config.eval.floors:
        rows |= floor_rows(config, splits, method.device)
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
        "rows": rows,
        **method.test_metrics(splits.test),
    }


def floor_rows(config: RecipeConfig, splits: Splits, device: torch.device) -> dict[str, dict[str, float]]:
    """Test kNN of the same architecture at random initialisation and of raw pixels."""
    random_method = build_random_init(config, splits).to(device)
    raw = knn_metrics(
        splits.train.images.flatten(1).float(), splits.train.labels,
        splits.test.images.flatten(1).float(), splits.test.labels,
        splits.num_classes,
    )  # fmt: skip
    return {RANDOM_INIT: knn_row(random_method, splits), RAW_PIXELS: raw}


def format_summary(summary: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    """A Markdown table: floors, this run, and optionally the same recipe with coded-smoothing off."""
    lines = ["| encoder | kNN top-1 k=20 T=0.07 | kNN top-1 k=200 T=0.1 | train s |", "|---|---|---|---|"]
    rows = summary["rows"]
    for name in (RAW_PIXELS, RANDOM_INIT):
        if name in rows:  # eval.floors=false: none
            lines.append(f"| {name} | {rows[name]['knn_dino_top1']:.4f} | {rows[name]['knn_instdisc_top1']:.4f} | - |")
    for run in filter(None, (baseline, summary)):
        label = f"{run['method']}" + (" + coded" if run["coded"] else "")
        row = run["rows"][ENCODER]
        lines.append(
            f"| {label} | {row['knn_dino_top1']:.4f} | {row['knn_instdisc_top1']:.4f} | {run['seconds']:.0f} |"
        )
    return "\n".join(lines)
