"""Evaluate encoders by the field's protocols, beside the raw-pixel and random-init floors.

`evaluate(encoder, train, test)` takes any encoder (an `nn.Module`, or any callable from a batch of
images to features) and any datasets of (image, label); `evaluate_sources(sources, splits, ...)` is
the same over several named encoders (an encoder and its floors) at once. Both extract (and, with a
key, cache) frozen features of each split, then run weighted kNN (presets dino k=20 T=0.07 and
instdisc k=200 T=0.1, top-1 and top-5 from one search, `ssl_coded.search.knn`), retrieval (test queries
against the train gallery: recall@1/5/10, mAP@R on a seeded subset of queries) and the linear probe
(C chosen on validation; without a validation split, on 10% of train carved with the seed). With an
output directory they write `results.json`, `results-eval.md` and the plots (`embedding.png`,
`retrieval.png`, `confusion.png`).

Example:
    >>> rows = evaluate(model, train_set, test_set, floors={"raw pixels": raw_pixels()}, out_dir="out")
    >>> rows["encoder"]["knn_dino_top1"], rows["encoder"]["linear_top1"]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ssl_coded.eval.features import FeatureSource, cached_features, encoder_source, resolve_device
from ssl_coded.eval.plots import confusion_plot, embedding_map, retrieval_grid
from ssl_coded.eval.protocols import ANCHORS, IMAGE_PROTOCOLS, PROTOCOLS, Task, get_protocol
from ssl_coded.eval.settings import EvalSettings
from torch import Tensor
from torch.utils.data import Dataset, Subset

from ssl_coded.data.encode import raw_pixels as flattened_pixels
from ssl_coded.io import write_json, write_text
from ssl_coded.results import SCHEMA_VERSION
from ssl_coded.rundir import RunLock, results_lock
from ssl_coded.search.knn import KnnBank
from ssl_coded.tables import markdown_table


def raw_pixels() -> FeatureSource:
    """The raw-pixel floor: images flattened to vectors, uint8 ones scaled to [0, 1] (not cached)."""
    return FeatureSource(flattened_pixels)


def evaluate(
    encoder: Callable[[Tensor], Tensor],
    train: Dataset,
    test: Dataset,
    val: Dataset | None = None,
    protocols: tuple[str, ...] = ANCHORS,
    floors: dict[str, Callable[[Tensor], Tensor] | FeatureSource] | None = None,
    num_classes: int | None = None,
    device: str = "auto",
    batch_size: int = 256,
    num_workers: int = 0,
    autocast: bool = False,
    out_dir: str | Path | None = None,
    key: str = "",
    seed: int = 0,
    record: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, dict[str, float]]:
    """Evaluate an encoder on (image, label) datasets: {"encoder": {metric: value}, floor name: ...}.

    Features are extracted in batches (DataLoader workers), in eval mode, under no_grad, on `device`.

    Args:
        encoder: an `nn.Module` or any callable from a batch of the datasets' images to (n, dim) features.
        train, test: datasets of (image tensor, label); the project's datasets too.
        val: the split that chooses the probe's C (default: 10% of train, carved with the seed).
        protocols: names on the protocol registry: "knn" (kNN and retrieval), "linear" (the probe),
            "knn-sweep" (k and T chosen on validation), "fewshot" (1% and 10% of the labels), and the
            image ones, which train through an `nn.Module` encoder: "probe-images", "finetune".
        floors: more encoders to evaluate beside it, e.g. {"random init": untrained_model,
            "raw pixels": raw_pixels()}; a callable is run like `encoder`.
        num_classes: default: the largest label + 1.
        device: "auto" (a GPU where there is one), "cpu", "cuda" or "cuda:N".
        batch_size, num_workers: of the feature extraction.
        autocast: extract under bf16 autocast.
        out_dir: where results.json, results-eval.md, the plots and the feature cache go (None: nowhere).
        key: identifies the encoder's weights, to cache its features in `out_dir` ("" = not cached).
        seed, record: as `evaluate_sources`'s.
        options: more `EvalSettings` (index_kind, probe, plots, cache_dir).
    """
    settings = EvalSettings(protocols, device=device, batch_size=batch_size, num_workers=num_workers, **options)
    where = resolve_device(device)
    sources = {"encoder": encoder_source(encoder, key, where, autocast)}
    modules = {"encoder": encoder} if isinstance(encoder, torch.nn.Module) else {}
    for name, floor in (floors or {}).items():
        sources[name] = floor if isinstance(floor, FeatureSource) else encoder_source(floor, "", where, autocast)
        if isinstance(floor, torch.nn.Module):
            modules[name] = floor
    splits = {"train": train, "test": test} | ({"val": val} if val is not None else {})
    return evaluate_sources(sources, splits, num_classes, out_dir, settings, seed=seed, record=record, modules=modules)


def evaluate_sources(
    sources: dict[str, FeatureSource],
    splits: dict[str, Dataset],
    num_classes: int | None,
    out_dir: str | Path | None,
    settings: EvalSettings | None = None,
    seed: int = 0,
    record: dict[str, Any] | None = None,
    modules: dict[str, Callable[[Tensor], Tensor]] | None = None,
) -> dict[str, dict[str, float]]:
    """{source name: {metric: value}}, also written to `out_dir` (results.json holds `record` too).

    results.json accumulates: the rows of each protocol are merged into those already there, and
    `protocols` records when each was made. A results.json made for another `record` (other data,
    another checkpoint) is first moved aside to `results-<time>.json`, never overwritten.

    Args:
        sources: the encoders, e.g. {"encoder": ..., "random init": ..., "raw pixels": raw_pixels()};
            the first one is plotted.
        splits: "train" and "test" datasets of (image, label), and optionally "val" (else 10% of the
            train features, carved with `seed`, choose the probe's C).
        num_classes: number of classes (None: the largest label + 1).
        out_dir: where results, plots and (by default) the feature cache go (None: nothing is written).
        settings: the protocols and how they run (default `EvalSettings()`).
        seed: seeds the carved validation split, the retrieval queries and the plots.
        record: what the results are of (e.g. the checkpoint hash and the data settings); also the
            feature cache's data key.
        modules: per source name, the encoder the image protocols (`finetune`, `probe-images`) train
            through: the datasets' images -> features (the first source must have one when they run).
    """
    settings = settings or EvalSettings()
    on_images = [p for p in IMAGE_PROTOCOLS if p in settings.protocols]
    if on_images and next(iter(sources)) not in (modules or {}):  # before anything is extracted or written
        raise ValueError(f"{', '.join(on_images)} train through the encoder: pass it as an nn.Module")
    out = Path(out_dir) if out_dir is not None else None
    cache = Path(settings.cache_dir) if settings.cache_dir else (out / "features" if out is not None else None)
    # one trainer or several evaluations at a time; results.json is merged under a short lock of its own
    with RunLock(out, shared=True) if out is not None else nullcontext():
        if out is not None:
            read_results(out / "results.json")  # an unreadable one is refused before anything is written
        data_key = json.dumps(record or {}, sort_keys=True)
        features = {}
        for name, src in sources.items():
            source = src if cache is not None else FeatureSource(src.encode)  # no folder: nothing cached
            features[name] = {
                split: cached_features(
                    source, dataset, split, cache or "", settings.batch_size, data_key, settings.num_workers
                )
                for split, dataset in splits.items()
            }
        labels = [y for _, y in next(iter(features.values())).values()]
        num_classes = num_classes or int(max(int(np.max(y)) for y in labels)) + 1
        task = Task(num_classes, settings, seed, resolve_device(settings.device))
        protocols = [p for p in PROTOCOLS if p in settings.protocols]  # the registry's order
        splits_with_val = with_validation(splits, seed)
        rows: dict[str, dict[str, float]] = {}
        details: dict[str, dict[str, Any]] = {}  # per row and protocol: what a row's numbers came from (grids, draws)
        produced: dict[str, set[str]] = {}  # per protocol: the metrics it wrote
        confusion = None
        for name, feats in features.items():
            rows[name] = {}
            for protocol in protocols:
                outcome = get_protocol(protocol)(feats, task)
                rows[name] |= outcome.row
                produced.setdefault(protocol, set()).update(outcome.row)
                if outcome.extra:
                    details.setdefault(name, {})[protocol] = outcome.extra
                confusion = outcome.confusion if confusion is None and len(rows) == 1 else confusion
            for protocol in on_images if modules and name in modules else []:
                outcome = get_protocol(protocol)(modules[name], splits_with_val, task)
                rows[name] |= outcome.row
                produced.setdefault(protocol, set()).update(outcome.row)
                details.setdefault(name, {})[protocol] = outcome.extra
        if out is None:
            return rows
        if settings.plots:
            write_plots(features[next(iter(features))], splits, out, confusion, seed)
        with results_lock(out):
            recorded = {
                p: {**settings.recorded(p), "metrics": sorted(produced.get(p, ()))} for p in [*protocols, *on_images]
            }
            merged = accumulate(out / "results.json", rows, recorded, record or {}, details)
            write_text(out / "results-eval.md", format_rows({str(out): merged}) + "\n")
        return rows


def with_validation(splits: dict[str, Dataset], seed: int) -> dict[str, Dataset]:
    """The splits with a validation split: the given one, or a seeded 10% of train carved off (as the probe
    carves its features)."""
    if splits.get("val") is not None and len(splits["val"]):  # type: ignore[arg-type]
        return splits
    order = np.random.default_rng(seed).permutation(len(splits["train"]))  # type: ignore[arg-type]
    cut = max(1, round(0.1 * len(order)))
    train, val = np.sort(order[cut:]).tolist(), np.sort(order[:cut]).tolist()
    return {**splits, "train": Subset(splits["train"], train), "val": Subset(splits["train"], val)}


def read_results(path: Path) -> dict[str, Any]:
    """results.json as a dict ({} where there is none); anything else is refused, naming the file and the fix."""
    if not path.is_file():
        return {}
    try:
        existing = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        existing = error
    if not isinstance(existing, dict) or not isinstance(existing.get("rows", {}), dict):
        raise ValueError(
            f"{path} is not an ssl-coded results file (not a JSON object with rows); move it away or choose --out"
        )
    return existing


def accumulate(
    path: Path,
    rows: dict[str, dict[str, float]],
    protocols: dict[str, dict[str, Any]],
    record: dict,
    details: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, float]]:
    """Merge new rows into results.json (per protocol, with the time each was made, the settings it ran
    with and the metrics it wrote; `details`, per row and protocol, beside them); returns all rows.

    Results are never mixed: a results.json of something else (another `record`), or one where a protocol
    run again ran with other settings, is first copied aside to `results-<time>.json`; then that
    protocol's earlier metrics and details are dropped from every row before the new ones go in.
    Call under `results_lock`: it reads, merges and writes back."""
    existing = read_results(path)
    record = json.loads(json.dumps(record))  # as it reads back from the file (tuples become lists)
    settings_json = json.loads(json.dumps(protocols))
    if existing and any(existing.get(k) != v for k, v in record.items()):  # results of something else
        set_aside(path, existing)
        existing = {}
    earlier: dict[str, dict[str, Any]] = existing.get("protocols", {})
    changed = [p for p, st in settings_json.items() if p in earlier and _settings(earlier[p]) != _settings(st)]
    if changed:
        set_aside(path, existing)
    merged: dict[str, dict[str, float]] = existing.get("rows", {})
    kept: dict[str, dict[str, Any]] = existing.get("details", {})
    for protocol in changed:
        for row in merged.values():
            for metric in earlier[protocol].get("metrics", []):
                row.pop(metric, None)
        for by_protocol in kept.values():
            by_protocol.pop(protocol, None)
    for name, row in rows.items():
        merged.setdefault(name, {}).update(row)
    for name, by_protocol in (details or {}).items():
        kept.setdefault(name, {}).update(by_protocol)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    made = dict(earlier)
    for protocol, st in settings_json.items():
        wrote = set(st.get("metrics", []))
        before = set() if protocol in changed else set(earlier.get(protocol, {}).get("metrics", []))
        made[protocol] = {"made": now, **_settings(st), "metrics": sorted(wrote | before)}
    grown = {"details": {n: d for n, d in kept.items() if d}} if any(kept.values()) else {}
    rest = {k: v for k, v in existing.items() if k != "details"}
    write_json(
        path,
        {"schema_version": SCHEMA_VERSION, **rest, **record, "rows": merged, "protocols": made, **grown, "made": now},
    )
    return merged


def _settings(entry: dict[str, Any]) -> dict[str, Any]:
    """A protocol's recorded settings, without when it ran and what it wrote."""
    return {k: v for k, v in entry.items() if k not in ("made", "metrics")}


def set_aside(path: Path, existing: dict[str, Any]) -> None:
    """Copy results.json to results-<when it was made>.json (a free name), before it changes meaning."""
    made = existing.get("made", "earlier").replace(":", "")
    aside = path.with_name(f"results-{made}.json")
    for n in range(1, 1000):
        if not aside.exists():
            break
        aside = path.with_name(f"results-{made}-{n}.json")
    write_text(aside, path.read_text())


def images_at(dataset: Dataset, indices: np.ndarray) -> torch.Tensor:
    """The dataset's images at `indices`, stacked (in the indices' shape)."""
    flat = [dataset[int(i)][0] for i in np.asarray(indices).reshape(-1)]
    return torch.stack(flat).view(*np.shape(indices), *flat[0].shape)


def write_plots(
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    splits: dict[str, Dataset],
    out_dir: Path,
    confusion: list | None,
    seed: int,
) -> None:
    """embedding.png (t-SNE of test features), retrieval.png (6 test queries, top-8 train
    neighbours, wrong classes framed red) and, with a probe, confusion.png."""
    (train_x, train_y), (test_x, test_y) = features["train"], features["test"]
    embedding_map(test_x, test_y, out_dir / "embedding.png", seed=seed)
    queries = torch.randperm(len(test_y), generator=torch.Generator().manual_seed(seed))[:6].numpy()
    _, neighbours = KnnBank(torch.from_numpy(np.array(train_x))).search(
        torch.from_numpy(np.asarray(test_x)[queries]), 8
    )
    gallery = images_at(splits["train"], neighbours.numpy())
    retrieval_grid(
        images_at(splits["test"], queries),
        test_y[queries],
        gallery.flatten(0, 1),
        train_y[neighbours.numpy()].reshape(-1),
        np.arange(neighbours.numel()).reshape(neighbours.shape),
        out_dir / "retrieval.png",
    )
    if confusion is not None:
        confusion_plot(confusion, out_dir / "confusion.png")


def format_rows(runs: dict[str, dict[str, dict[str, float]]]) -> str:
    """One Markdown table: a row per (run, encoder or floor), a column per metric."""
    metrics = sorted({m for rows in runs.values() for row in rows.values() for m in row if m != "linear_c"})
    lines = [
        [Path(run).name, name, *(_cell(m, row[m]) if m in row else "-" for m in metrics)]
        for run, rows in runs.items()
        for name, row in rows.items()
    ]
    return markdown_table(["run", "encoder", *metrics], lines)


def _cell(metric: str, value: float) -> str:
    """A chosen setting as itself (k 20, T 0.07), a score to four decimals."""
    if metric.endswith("_k"):
        return f"{value:.0f}"
    return f"{value:.3g}" if metric.endswith("_t") else f"{value:.4f}"
