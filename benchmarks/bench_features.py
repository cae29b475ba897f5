"""Feature extraction: the evaluation's path against a plain torch loop over the same DataLoader.

Both run a torchvision resnet18 (classifier removed) in eval mode under no_grad over the same
dataset of random images, with the same DataLoader settings (batch size, workers, pinned memory on
a GPU). The plain loop appends each batch's features to a list and concatenates them; the
evaluation's path (`encoder_source` + `cached_features`) moves batches to the device, writes the
features batch by batch into a fresh memory-mapped cache, then the cache's SHA-256 checksums. They
take turns, one full pass each per round; the printed ratio is the median of the per-round ratios
(images/s of the evaluation's path over the plain loop's, target >= 0.95). A last line times the
checksums a reuse of the cache verifies (files just written: in the page cache) against the
extraction that wrote them.

Run: python -m benchmarks.bench_features [--images 2048 --image-size 64 --device auto --rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ssl_coded.eval.encoders import build_encoder
from ssl_coded.eval.features import cached_features, encoder_source, file_sha256, resolve_device
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ssl_coded.io import write_json


def plain_loop(model: nn.Module, loader: DataLoader, device: torch.device) -> np.ndarray:
    """What a user writes by hand."""
    features = []
    with torch.no_grad():
        for images, _ in loader:
            features.append(model(images.to(device, non_blocking=True)).float().cpu().numpy())
    return np.concatenate(features)


def run_features_benchmark(
    images: int = 2048,
    image_size: int = 64,
    batch_size: int = 256,
    num_workers: int = 0,
    rounds: int = 5,
    device: str = "auto",
    encoder: str = "torchvision:resnet18",
) -> dict[str, Any]:
    """Print the comparison; returns {"ratio": median per-round images/s ratio, "plain", "ours", "checksum":
    per-round seconds}."""
    where = resolve_device(device)
    generator = torch.Generator().manual_seed(0)
    dataset = TensorDataset(torch.rand(images, 3, image_size, image_size, generator=generator), torch.zeros(images))
    model = build_encoder(encoder).to(where).eval()
    pin = where.type == "cuda"
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=pin)
    source = encoder_source(model, key="bench", device=where)
    plain_loop(model, loader, where)  # warm-up: allocator, cuDNN autotuning, worker start
    times: dict[str, list[float]] = {"plain": [], "ours": [], "checksum": []}
    for _ in range(rounds):
        start = time.perf_counter()
        reference = plain_loop(model, loader, where)
        times["plain"].append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as folder:  # a fresh cache: every round extracts
            start = time.perf_counter()
            ours, _ = cached_features(source, dataset, "train", folder, batch_size, num_workers=num_workers)
            times["ours"].append(time.perf_counter() - start)
            agree = bool(np.allclose(np.asarray(ours), reference, atol=1e-4))
            start = time.perf_counter()  # what a reuse of the cache verifies: both files' SHA-256
            for path in Path(folder).glob("*.npy"):
                file_sha256(path)
            times["checksum"].append(time.perf_counter() - start)
    ratio = statistics.median(p / o for p, o in zip(times["plain"], times["ours"], strict=True))
    rate = {name: images / statistics.median(times[name]) for name in ("plain", "ours")}
    checksum, extraction = statistics.median(times["checksum"]), statistics.median(times["ours"])
    print(
        f"{encoder} on {images} random {image_size}x{image_size} images, batch {batch_size}, "
        f"{num_workers} workers, {where}, {torch.get_num_threads()} threads, {rounds} rounds"
    )
    print("| path | images/s (median) | vs plain loop |\n|---|---|---|")
    print(f"| plain torch loop over the DataLoader | {rate['plain']:.0f} | 1.00x |")
    print(f"| ssl-coded (encoder_source + cached_features) | {rate['ours']:.0f} | {ratio:.2f}x |")
    print(f"features equal to the plain loop's: {agree}; target >= 0.95x: {'met' if ratio >= 0.95 else 'NOT met'}")
    print(
        f"cache checksum (SHA-256 of features and labels, median): {checksum:.4f} s vs extraction {extraction:.3f} s "
        f"(ratio {checksum / extraction:.4f})"
    )
    return {"ratio": ratio, "agree": agree, "device": str(where), **times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--encoder", default="torchvision:resnet18")
    parser.add_argument("--out-dir", default="docs")
    args = parser.parse_args()
    result = run_features_benchmark(
        args.images, args.image_size, args.batch_size, args.workers, args.rounds, args.device, args.encoder
    )
    write_json(Path(args.out_dir) / "bench-features.json", result | {"settings": vars(args)})


if __name__ == "__main__":
    main()
