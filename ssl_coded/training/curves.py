"""`curves.png` of a run: training loss and validation kNN top-1 per epoch."""

from __future__ import annotations

from pathlib import Path

from ssl_coded.io import atomic_write
from ssl_coded.training.metrics_log import read_epoch_metrics


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
