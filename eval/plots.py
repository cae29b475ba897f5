"""Pictures beside the numbers: embedding map (t-SNE), retrieval grid, confusion matrix (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssl_coded.io import atomic_write


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display): every figure of the project starts here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, dpi: int = 100) -> None:
    """Write the figure as a PNG atomically (never half a file), and close it."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    pyplot().close(fig)


def embedding_map(features: np.ndarray, labels: np.ndarray, path: Path, max_points: int = 2000, seed: int = 0) -> None:
    """t-SNE of (a seeded subset of) the features, coloured by label."""
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    index = rng.permutation(len(features))[:max_points]
    points = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, len(index) - 1)).fit_transform(
        np.asarray(features)[index]
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=np.asarray(labels)[index], cmap="tab10", s=4)
    ax.legend(*scatter.legend_elements(), title="class", fontsize=7, loc="best")
    ax.set(title=f"t-SNE of {len(index)} test features", xticks=[], yticks=[])
    save_png(fig, path)


def retrieval_grid(
    query_images: torch.Tensor,
    query_labels: np.ndarray,
    gallery_images: torch.Tensor,
    gallery_labels: np.ndarray,
    neighbours: np.ndarray,
    path: Path,
) -> None:
    """One row per query: the query, then its nearest gallery images; wrong-class ones framed red."""
    plt = pyplot()
    rows, cols = neighbours.shape[0], neighbours.shape[1] + 1
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.1), squeeze=False)

    def show(ax, image: torch.Tensor, color: str | None) -> None:
        array = image.permute(1, 2, 0).numpy()
        ax.imshow(array[..., 0] if array.shape[-1] == 1 else array, cmap="gray")
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(color is not None)
            if color:
                spine.set_color(color), spine.set_linewidth(3)

    for row in range(rows):
        show(axes[row, 0], query_images[row], "black")
        for col, index in enumerate(neighbours[row], start=1):
            wrong = gallery_labels[index] != query_labels[row]
            show(axes[row, col], gallery_images[index], "red" if wrong else None)
    axes[0, 0].set_title("query", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def confusion_plot(confusion: list[list[int]], path: Path, title: str = "linear probe, test") -> None:
    matrix = np.asarray(confusion)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            fontsize=6,
            color="white" if value > matrix.max() / 2 else "black",
        )
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax)
    save_png(fig, path)
