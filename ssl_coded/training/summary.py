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
        "data": config.data.name,
        "test_images": len(splits.test),
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


def read_summary(summary: dict[str, Any], baseline: dict[str, Any] | None = None, run: str = "runs/<name>") -> str:
    """One line that reads the table of `format_summary`, and the next commands to try."""
    runs = [r for r in (baseline, summary) if r]
    scores = {r["method"] + (" + coded" if r["coded"] else ""): r["rows"][ENCODER]["knn_dino_top1"] for r in runs}
    top1 = max(scores.values())
    best = [name for name, score in scores.items() if score == top1]
    parts = [f"{' and '.join(best)} {'tie' if len(best) > 1 else 'is best'} here (kNN top-1 {top1:.4f}, k=20)"]
    rows = summary["rows"]
    floors = {name: rows[name]["knn_dino_top1"] for name in (RANDOM_INIT, RAW_PIXELS) if name in rows}
    if floors:
        beaten = [f"{n} ({v:.4f})" for n, v in floors.items() if top1 > v]
        missed = [f"{n} ({v:.4f})" for n, v in floors.items() if top1 <= v]
        parts.append("pretraining beats " + " and ".join(beaten) if beaten else "pretraining beats no floor")
        if missed:
            parts.append("not " + " and ".join(missed))
    n = summary.get("test_images")
    if n:
        parts.append(f"one test image is {100 / n:.2f} points, so gaps of a few images are noise")
    if summary.get("data") == "digits":
        parts.append("digits is a smoke set where raw pixels are near the ceiling")
    next_steps = (
        f"Next: `ssl-coded eval all {run}` (kNN, retrieval, linear probe), "
        "`ssl-coded pretrain simclr-fashion-mnist --compare coded.enabled=true` (a real set), `ssl-coded recipes`"
    )
    return "Reading: " + "; ".join(parts) + ".\n" + next_steps
