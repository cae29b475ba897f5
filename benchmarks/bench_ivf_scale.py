"""Where approximate search starts to pay: the exact kNN against FAISS IVF as the gallery grows.

Synthetic clustered features (128-d, 1,000 Gaussian clusters, their ids mod 10 the class labels), as
real embeddings are clustered and random ones are not; galleries of growing size (default 100,000,
300,000 and 1,000,000 items) and 2,000 fresh queries from the same mixture, k=200, T=0.1. Per size:
the exact search (`KnnBank`, index preparation included), FAISS IVF's build (training on the gallery
and adding it, nlist 4 sqrt(N)) and its search at nprobe 8, 16, 32; the IVF's speed-up over exact,
its top-1 agreement with exact and its neighbour recall@k. The crossover printed at the end is the
smallest size where an IVF search is at least 10x faster than exact at >= 99% top-1 agreement, and
the number of query batches of this size after which its build time is paid back.

Run: python -m benchmarks.bench_ivf_scale [--sizes 100000 300000 1000000] [--queries 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from ssl_coded.eval.knn_faiss import make_index, neighbour_recall

from ssl_coded.search.knn import KnnBank, rank_classes
from ssl_coded.tables import markdown_table

DIM, CLUSTERS, CLASSES, NOISE = 128, 1000, 10, 1.0


def clustered(n: int, centres: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n points around the centres (noise of a centre's own scale: neighbouring clusters overlap), and their
    classes."""
    ids = torch.randint(0, len(centres), (n,), generator=generator)
    return centres[ids] + NOISE * torch.randn(n, centres.shape[1], generator=generator), ids % CLASSES


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure(size: int, queries: int, k: int, repeats: int, nprobes: tuple[int, ...] = (8, 16, 32)) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(CLUSTERS, DIM, generator=generator)
    bank, labels = clustered(size, centres, generator)
    query, _ = clustered(queries, centres, generator)

    def top1(similarity: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        return rank_classes(similarity, labels[neighbours.clamp(min=0)], CLASSES, 0.1)[:, 0]

    exact_s, (similarity, exact) = timed(lambda: KnnBank(bank).search(query, k), repeats)
    reference = top1(similarity, exact)
    build_s, ivf = timed(lambda: make_index(bank, "ivf"), 1)  # minutes at 1M: once
    rows = [{"size": size, "method": "exact", "seconds": exact_s, "agreement": 1.0, "recall": 1.0}]
    rows.append({"size": size, "method": f"IVF build (nlist {ivf.index.nlist})", "seconds": build_s})
    for nprobe in nprobes:
        ivf.index.nprobe = nprobe
        search_s, (approx_similarity, approx) = timed(lambda: ivf.search(query, k), repeats)
        rows.append({
            "size": size, "method": f"IVF nprobe {nprobe}", "seconds": search_s, "speedup": exact_s / search_s,
            "agreement": float((top1(approx_similarity, approx) == reference).float().mean()),
            "recall": neighbour_recall(approx.numpy(), exact.numpy()),
        })  # fmt: skip
    return rows


def crossover(rows: list[dict]) -> str:
    """The smallest size where an IVF search is >= 10x exact at >= 99% agreement, and when its build pays."""
    for size in sorted({r["size"] for r in rows}):
        at = [r for r in rows if r["size"] == size]
        good = [r for r in at if r.get("speedup", 0) >= 10 and r["agreement"] >= 0.99]
        if good:
            best = max(good, key=lambda r: r["speedup"])
            exact = next(r["seconds"] for r in at if r["method"] == "exact")
            build = next(r["seconds"] for r in at if r["method"].startswith("IVF build"))
            batches = build / max(exact - best["seconds"], 1e-9)
            return (
                f"crossover: at {size:,} items {best['method']} is {best['speedup']:.1f}x exact at "
                f"{100 * best['agreement']:.1f}% top-1 agreement; its build pays back after {batches:.1f} "
                "such query batches"
            )
    return "crossover: no size measured reaches 10x exact at >= 99% top-1 agreement"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [row for size in args.sizes for row in measure(size, args.queries, args.k, args.repeats)]
    table = markdown_table(
        ["items", "method", "seconds", "speed-up over exact", "top-1 agreement", f"neighbour recall@{args.k}"],
        [
            [f"{r['size']:,}", r["method"], f"{r['seconds']:.3f}", f"{r['speedup']:.1f}" if "speedup" in r else "-",
             f"{r['agreement']:.4f}" if "agreement" in r else "-", f"{r['recall']:.4f}" if "recall" in r else "-"]
            for r in rows
        ],
    )  # fmt: skip
    print(f"{DIM}-d, {CLUSTERS} clusters, {args.queries} queries, {torch.get_num_threads()} threads\n{table}")
    print(crossover(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
