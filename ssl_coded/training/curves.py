"""`curves.png` of a run: training loss and validation kNN top-1 per epoch."""

from __future__ import annotations

from pathlib import Path

from ssl_coded.io import atomic_write
from ssl_coded.training.metrics_log import read_epoch_metrics, read_step_metrics


def write_curves(out: Path) -> None:
    metrics = out / "metrics.csv"
    if not metrics.is_file():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_epoch_metrics(metrics)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in ("train_loss", "train_coded_penalty"):  # per logged step: short runs have few epochs
        points = read_step_metrics(metrics, key)
        if points:
            axes[0].plot([s for s, _ in points], [v for _, v in points], label=key)
    monitor = next((k for k in ("val_knn_top1", "val_accuracy") if k in series), None)
    if monitor:
        axes[1].plot([e + 1 for e, _ in series[monitor]], [v for _, v in series[monitor]], marker="o")
    axes[0].set(xlabel="step", ylabel="loss", title="training loss (logged steps)")
    if axes[0].lines:
        axes[0].legend()
    axes[1].set(
        xlabel="epoch", ylabel="top-1", title=f"validation {'kNN top-1' if monitor != 'val_accuracy' else 'accuracy'}"
    )
    fig.tight_layout()
    atomic_write(out / "curves.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
