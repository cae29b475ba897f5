"""The summary of a pretraining run: test kNN of its best checkpoint beside the raw-pixel and
random-init floors, by the same search and metric names as `ssl-coded eval` (`ssl_coded.search.knn`)."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor

from ssl_coded.data import ImageDataset, Splits, TensorImageDataset
from ssl_coded.data.encode import encode
from ssl_coded.results import ENCODER, RANDOM_INIT, RAW_PIXELS
from ssl_coded.search.knn import PRESETS, KnnBank, knn_metrics
from ssl_coded.tables import markdown_table
from ssl_coded.training.checkpoints import load_checkpoint_file
from ssl_coded.training.config import RecipeConfig
from ssl_coded.training.methods import TrainedModel, build_random_init


def extract(method: TrainedModel, dataset: ImageDataset) -> Tensor:
    """The encoder's features of a split, on the method's device (where the search then runs)."""
    method.eval()
    return torch.from_numpy(encode(method.encode, dataset)[0]).to(method.device)


def summarise(
    config: RecipeConfig, splits: Splits, method: TrainedModel, checkpoint: ModelCheckpoint, seconds: float
) -> dict[str, Any]:
    """Test kNN (`rows`: encoder and floors, as in results.json) of the best checkpoint, and the run's facts."""
    best = checkpoint.best_model_path or checkpoint.last_model_path
    if best:
        state = load_checkpoint_file(best)["state_dict"]
        method.fill_normalisation(state)
        method.load_state_dict(state)
    rows = knn_rows(config, splits, method)
    return {
        "recipe": config.name,
        "method": config.method.name,
        "coded": config.coded.enabled or getattr(config.method, "regularizer", "") == "coded",
        "epochs": config.trainer.max_epochs,
        "seconds": round(seconds, 1),
        "best_checkpoint": str(best),
        f"best_{method.monitor}": float(checkpoint.best_model_score)
        if checkpoint.best_model_score is not None
        else None,
        "rows": rows,
        "data": config.data.name,
        "test_images": len(splits.test),
        **method.test_metrics(splits),
    }


def knn_rows(config: RecipeConfig, splits: Splits, method: TrainedModel) -> dict[str, dict[str, float]]:
    """Test kNN of the encoder and, with eval.floors, of the same architecture at its random initialisation
    and of raw pixels: every encoder's features first, then every search."""
    encoders = {ENCODER: method}
    if config.eval.floors:
        encoders[RANDOM_INIT] = build_random_init(config, splits).to(method.device)
    features = {name: (extract(m, splits.train), extract(m, splits.test)) for name, m in encoders.items()}
    train_y, test_y = splits.train.labels, splits.test.labels
    rows = {
        name: knn_metrics(bank, train_y, queries, test_y, splits.num_classes)
        for name, (bank, queries) in features.items()
    }
    if config.eval.floors:
        rows[RAW_PIXELS] = raw_pixel_row(splits)
    return rows


def raw_pixel_row(splits: Splits) -> dict[str, float]:
    """Test kNN of raw pixels: an in-memory train split is one bank; a streamed one is searched batch by
    batch (`streamed_neighbours`), so that its pixels are never held whole."""
    queries = torch.cat([images.flatten(1) for images, _ in splits.test.loader(512)])  # uint8 until searched
    train, labels = splits.train, splits.train.labels
    if isinstance(train, TensorImageDataset):
        bank = train.take(torch.arange(len(train)))[0].flatten(1).float()
        return knn_metrics(bank, labels, queries.float(), splits.test.labels, splits.num_classes)
    neighbours = streamed_neighbours(train, queries, max(k for k, _ in PRESETS.values()))
    # given the neighbours, knn_metrics counts the bank's rows only: a (n, 0) stand-in holds no pixels
    return knn_metrics(torch.empty(len(train), 0), labels, queries, splits.test.labels, splits.num_classes, neighbours)


@torch.no_grad()
def streamed_neighbours(
    bank: ImageDataset, queries: Tensor, k: int, batch_size: int = 512, query_chunk: int = 1024
) -> tuple[Tensor, Tensor]:
    """The k nearest rows (cosine similarity, best first) of a dataset's flattened pixels to each query,
    read one batch at a time: each batch is searched exactly and merged into the running top k.

    Args:
        bank: the dataset searched (read once).
        queries: (num_queries, C*H*W) pixels, any dtype; converted to float a chunk at a time.
        k: neighbours per query.
        batch_size: bank rows per search; query_chunk: queries per search.

    Returns:
        (similarity, bank index), each (num_queries, min(k, len(bank))).

    Example:
        >>> similarity, index = streamed_neighbours(splits.train, test_pixels, k=200)
    """
    chunks = queries.split(query_chunk)
    best: list[tuple[Tensor, Tensor] | None] = [None] * len(chunks)
    start = 0
    for images, _ in bank.loader(batch_size):
        index = KnnBank(images.flatten(1).float())
        for c, chunk in enumerate(chunks):
            similarity, rows = index.search(chunk.float(), k)
            rows = rows + start
            previous = best[c]
            if previous is not None:
                similarity, rows = torch.cat([previous[0], similarity], 1), torch.cat([previous[1], rows], 1)
                similarity, order = similarity.topk(min(k, similarity.shape[1]), dim=1)
                rows = rows.gather(1, order)
            best[c] = (similarity, rows)
        start += len(images)
    found = [pair for pair in best if pair is not None]
    return torch.cat([s for s, _ in found]), torch.cat([r for _, r in found])


def format_summary(summary: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    """A Markdown table: floors, this run, and optionally the same recipe with coded-smoothing off."""
    head = ["encoder", "kNN top-1 k=20 T=0.07", "kNN top-1 k=200 T=0.1", "train s"]
    rows = []
    for name in (RAW_PIXELS, RANDOM_INIT):
        if name in summary["rows"]:  # eval.floors=false: none
            row = summary["rows"][name]
            rows.append([name, f"{row['knn_dino_top1']:.4f}", f"{row['knn_instdisc_top1']:.4f}", "-"])
    for run in filter(None, (baseline, summary)):
        label = f"{run['method']}" + (" + coded" if run["coded"] else "")
        row = run["rows"][ENCODER]
        rows.append([label, f"{row['knn_dino_top1']:.4f}", f"{row['knn_instdisc_top1']:.4f}", f"{run['seconds']:.0f}"])
    return markdown_table(head, rows)


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
