"""The main job until recipes exist: SimCLR on digits with and without coded-smoothing, compared.

Trains the same small CNN three times (coded-smoothing off, on the projection head's input, on the
image input), evaluates each backbone with weighted kNN on the test split beside the raw-pixel
and random-init floors, and writes config, per-epoch metrics, a summary and a plot into a run
directory.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import Tensor, nn

from ssl_coded.augment import BatchAugment
from ssl_coded.backbones import SmallCNN
from ssl_coded.data import load_digits_split
from ssl_coded.hook import CodedSmoothingHook
from ssl_coded.io import atomic_write, write_json, write_text
from ssl_coded.knn import knn_accuracy
from ssl_coded.regularizer import CodedSmoothing

# where the coded branch sits: a submodule name of SimCLRModel ("" is the whole model)
PLACEMENTS: dict[str, str | None] = {"off": None, "embedding": "projection_head", "input": ""}


@dataclass
class DemoConfig:
    epochs: int = 60
    batch_size: int = 256
    lr: float = 3e-3
    temperature: float = 0.2
    weight: float = 0.5
    kind: str = "spline"
    coded_ratio: float = 2.0
    seed: int = 0
    out: str = "runs/demo"


class SimCLRModel(nn.Module):
    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.backbone = SmallCNN(in_channels)
        self.projection_head = SimCLRProjectionHead(self.backbone.feature_dim, 256, 64)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection_head(self.backbone(x))


@torch.no_grad()
def embed(backbone: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    backbone.eval()
    return torch.cat([backbone(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def train_simclr(config: DemoConfig, placement: str, data: tuple[Tensor, ...]) -> dict:
    """Train one SimCLR model; returns per-epoch metrics and the final kNN accuracies."""
    train_x, train_y, test_x, test_y = data
    torch.manual_seed(config.seed)
    model = SimCLRModel(train_x.shape[1])
    augment, criterion = BatchAugment(), NTXentLoss(temperature=config.temperature)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    hook = None
    if PLACEMENTS[placement] is not None:
        reg = CodedSmoothing(weight=config.weight, kind=config.kind, coded_ratio=config.coded_ratio)
        hook = CodedSmoothingHook(model, reg, submodule=PLACEMENTS[placement], max_passes_per_step=1)

    history, start = [], time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(train_x))
        totals = {"loss": 0.0, "penalty": 0.0, "relative_error": 0.0}
        steps = 0
        for i in range(0, len(order) - config.batch_size + 1, config.batch_size):
            images = train_x[order[i : i + config.batch_size]]
            z0, z1 = model(augment(images)), model(augment(images))
            loss = criterion(z0, z1)
            penalty = hook.pop_penalty() if hook else torch.zeros(())
            optimizer.zero_grad()
            (loss + penalty).backward()
            optimizer.step()
            totals["loss"] += loss.item()
            totals["penalty"] += penalty.item()
            if hook:
                totals["relative_error"] += float(hook.regularizer.last_fidelity["relative_error"])
            steps += 1
        history.append({"placement": placement, "epoch": epoch + 1} | {k: v / steps for k, v in totals.items()})
    seconds = time.perf_counter() - start
    if hook:
        hook.remove()
    train_features, test_features = embed(model.backbone, train_x), embed(model.backbone, test_x)
    return {
        "history": history,
        "seconds": seconds,
        "knn_dino": knn_accuracy(train_features, train_y, test_features, test_y, "dino"),
        "knn_instdisc": knn_accuracy(train_features, train_y, test_features, test_y, "instdisc"),
    }


def floors(config: DemoConfig, data: tuple[Tensor, ...]) -> dict[str, dict[str, float]]:
    train_x, train_y, test_x, test_y = data
    torch.manual_seed(config.seed)
    random_backbone = SimCLRModel(train_x.shape[1]).backbone
    rows = {"raw pixels": (train_x.flatten(1), test_x.flatten(1))}
    rows["random init"] = (embed(random_backbone, train_x), embed(random_backbone, test_x))
    return {
        name: {preset: knn_accuracy(tr, train_y, te, test_y, preset) for preset in ("dino", "instdisc")}
        for name, (tr, te) in rows.items()
    }


def write_plot(path: Path, history: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for color, placement in enumerate(PLACEMENTS):
        rows = [r for r in history if r["placement"] == placement]
        epochs, style = [r["epoch"] for r in rows], {"label": placement, "color": f"C{color}"}
        axes[0].plot(epochs, [r["loss"] for r in rows], **style)
        if placement != "off":
            axes[1].plot(epochs, [r["relative_error"] for r in rows], **style)
    axes[0].set(xlabel="epoch", ylabel="NT-Xent loss", title="SimCLR loss (coded-smoothing placement)")
    axes[1].set(xlabel="epoch", ylabel="||decoded - f(x)|| / ||f(x)||", title="decoding fidelity")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def run_demo(config: DemoConfig) -> dict:
    """Run the comparison and write the run directory; returns the summary."""
    CodedSmoothing(weight=config.weight, kind=config.kind, coded_ratio=config.coded_ratio)  # validate first
    out = Path(config.out)
    write_json(out / "config.json", asdict(config))
    data = load_digits_split(seed=config.seed)
    summary = {"floors": floors(config, data), "runs": {}}
    history = []
    for placement in PLACEMENTS:
        print(f"training SimCLR on digits, coded-smoothing {placement} ...", flush=True)
        result = train_simclr(config, placement, data)
        history += result.pop("history")
        summary["runs"][placement] = result
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    write_text(out / "metrics.csv", buffer.getvalue())
    write_json(out / "summary.json", summary)
    write_plot(out / "loss.png", history)
    table = format_table(summary)
    write_text(out / "results.md", table + "\n")
    print(table)
    print(f"run directory: {out}")
    return summary


def format_table(summary: dict) -> str:
    lines = [
        "| encoder | kNN top-1 (k=20, T=0.07) | kNN top-1 (k=200, T=0.1) | train time (s) |",
        "|---|---|---|---|",
    ]
    for name, row in summary["floors"].items():
        lines.append(f"| {name} | {row['dino']:.3f} | {row['instdisc']:.3f} | - |")
    for placement, row in summary["runs"].items():
        label = "SimCLR" if placement == "off" else f"SimCLR + coded ({placement})"
        lines.append(f"| {label} | {row['knn_dino']:.3f} | {row['knn_instdisc']:.3f} | {row['seconds']:.1f} |")
    return "\n".join(lines)
