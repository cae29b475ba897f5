"""kNN search and linear probe benchmark: this harness against lightly, FAISS and scikit-learn, side by side.

Part 1, random unit features (raw speed; random features have no clusters): a gallery of 50,000 x 512
and 10,000 queries, k=200, T=0.1 (instdisc). Rows: this harness's exact search (the calibration's
backend: bf16 product, fp32 re-rank, certificate; or the fp32 product), FAISS IndexFlatIP, lightly's
`knn_predict` (1,024 queries per call, as in its benchmark module), scikit-learn's KNeighborsClassifier
(brute, cosine, the same exp(sim/T) weights) and the fp32 torch brute force that all are checked
against. Each time covers the whole job from raw features to predicted classes, index building
included; the fp32 and bf16 matrix products of the same shape alone (each in its faster orientation:
(queries, bank) or the transpose) are timed beside them, and GFLOP/s counts 2 x queries x gallery x dim
per search. The header prints the exact search (index prepared once) as a multiple of the faster
product, beside the floor under it: the product plus the fp32 dot products of each query with the k rows
of its answer (which a certified fp32 answer cannot skip), computed as the search's re-rank computes them.

Part 2, a trained encoder's Fashion-MNIST features (`--run`): gallery = train + validation (60,000),
queries = test (10,000); exact search against FAISS flat, FAISS IVF at nprobe 8, 16, 32 (what IVF is
for) and FAISS HNSW, with their top-1 agreement and neighbour recall against exact. Part 3, on the
same features: the linear probe
(L-BFGS, C chosen on validation, refit on train + validation) against one scikit-learn
LogisticRegression at its default C=1 on train + validation.

Memory: each exact method's peak resident memory above its inputs, index building included, each in a
fresh process (Linux; `--no-memory` skips it).

Times are medians over --repeats runs (scikit-learn's kNN runs once: it takes the longest); in part 1
the rows take turns, one run each per round, and the speed against lightly is the median of the
per-round ratios (robust to a machine whose load changes during the benchmark).
Writes bench-knn.json, bench-knn.md and bench-knn.png into --out-dir.

The exact search runs as `KnnBank` does by default: its backend (certified bf16 or the fp32
product) is the one `ssl_coded.search.calibration` chose on this machine, printed in the header with the
measured bf16/fp32 ratio; the table's "speed vs lightly" is lightly's median time over each row's.

Run: python -m benchmarks.bench_knn [--run runs/fmnist-simclr] [--repeats 3] [--no-sklearn]

Over 400 lines on purpose: one command, whose three parts share the data, the round-robin timing loop,
the correctness checks against the fp32 brute force and one report; split, each part would repeat them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from lightly.utils.benchmarking import knn_predict as lightly_knn_predict
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from ssl_coded.eval.knn_faiss import make_index, neighbour_recall
from ssl_coded.eval.linear_probe import linear_probe

from ssl_coded.io import write_json, write_text
from ssl_coded.search import calibration
from ssl_coded.search.exact_search import ExactIndex, SearchStats
from ssl_coded.search.hardware import native_bf16
from ssl_coded.search.knn import KnnBank, rank_classes


@dataclass
class Row:
    part: str
    method: str
    seconds: float
    agreement: float | None = None  # top-1 predictions equal to the reference's, fraction
    gflops: float | None = None
    note: str = ""
    speed_vs_lightly: float | None = None  # median per-round ratio lightly / this (interleaved rounds)
    peak_mib: float | None = None  # peak memory above the inputs, index building included (fresh process)


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def brute_force_predict(
    bank: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, classes: int, k: int, t: float
):
    """The reference: the fp32 product of each chunk of queries with the whole bank, top-k, the same votes."""
    bank = F.normalize(bank, dim=1)
    ranked = []
    for q in queries.split(1024):
        similarity, index = (F.normalize(q, dim=1) @ bank.T).topk(k, dim=1)
        ranked.append(rank_classes(similarity, labels[index], classes, t)[:, 0])
    return torch.cat(ranked)


def index_predict(kind: str, bank: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, classes: int, k, t):
    similarity, index = make_index(bank, kind).search(queries, k)
    return rank_classes(similarity, labels[index], classes, t)[:, 0]


def lightly_predict(bank: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, classes: int, k: int, t: float):
    feature_bank = F.normalize(bank, dim=1).T.contiguous()
    chunks = [
        lightly_knn_predict(F.normalize(q, dim=1), feature_bank, labels, classes, k, t)[:, 0]
        for q in queries.split(1024)
    ]
    return torch.cat(chunks)


def sklearn_predict(bank: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, k: int, t: float):
    def weights(distance: np.ndarray) -> np.ndarray:
        return np.exp((1.0 - distance) / t)  # cosine distance = 1 - similarity: the same votes as ours

    model = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric="cosine", weights=weights, n_jobs=-1)
    return torch.from_numpy(model.fit(bank.numpy(), labels.numpy()).predict(queries.numpy()))


def knn_rows(
    part: str,
    bank: torch.Tensor,
    labels: torch.Tensor,
    queries: torch.Tensor,
    k: int,
    temperature: float,
    repeats: int,
    include: tuple[str, ...],
) -> list[Row]:
    """Time each kNN classifier on the same job, the rows taking turns each round; agreement is against
    the fp32 torch brute force."""
    classes = int(labels.max()) + 1
    flops = 2.0 * len(queries) * len(bank) * bank.shape[1]
    candidates: dict[str, tuple[Callable[[], torch.Tensor], str]] = {
        "torch fp32 brute force (reference)": (
            lambda: brute_force_predict(bank, labels, queries, classes, k, temperature),
            "",
        ),
        "ssl-coded exact": (
            lambda: KnnBank(bank, labels).predict(queries, classes, k, temperature)[:, 0],
            "bf16 product, fp32 re-rank, certified (calibration's choice)"
            if calibration.knn_backend() == "bf16"
            else "fp32 product, block-max top-k (calibration's choice)",
        ),
        "FAISS IndexFlatIP": (lambda: index_predict("flat", bank, labels, queries, classes, k, temperature), "fp32"),
        "lightly knn_predict": (
            lambda: lightly_predict(bank, labels, queries, classes, k, temperature),
            "fp32, 1,024 queries per call",
        ),
    }
    timed = ["torch fp32 brute force (reference)", *(n for n in include if n in candidates)]
    times: dict[str, list[float]] = {name: [] for name in timed}
    predictions: dict[str, torch.Tensor] = {}
    for i in range(repeats):
        for name in timed[:: 1 if i % 2 == 0 else -1]:  # alternate who goes first
            start = time.perf_counter()
            predictions[name] = candidates[name][0]()
            times[name].append(time.perf_counter() - start)
    reference = predictions["torch fp32 brute force (reference)"]
    rows = []
    for name in timed:
        seconds = statistics.median(times[name])
        agreement = float((predictions[name] == reference).float().mean())
        ratio = None
        if "lightly knn_predict" in times:
            ratio = statistics.median(b / t for b, t in zip(times["lightly knn_predict"], times[name], strict=True))
        rows.append(Row(part, name, seconds, agreement, flops / seconds / 1e9, candidates[name][1], ratio))
    if "scikit-learn KNeighborsClassifier" in include:
        seconds, predicted = median_time(lambda: sklearn_predict(bank, labels, queries, k, temperature), 1)
        agreement = float((predicted == reference).float().mean())
        rows.append(
            Row(
                part,
                "scikit-learn KNeighborsClassifier",
                seconds,
                agreement,
                flops / seconds / 1e9,
                "brute, cosine, one run",
            )
        )
    return rows


CHUNK = 1024  # queries per product, as the exact search's default chunk


def matmul_rows(part: str, bank: torch.Tensor, queries: torch.Tensor, repeats: int) -> list[Row]:
    """The matrix product of the search's shape alone, into a reused buffer, in whichever orientation
    runs faster here ((queries, bank) or its transpose, which the bf16 search computes): the floor of
    any exact search in that dtype."""
    flops = 2.0 * len(queries) * len(bank) * bank.shape[1]
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        a, b = queries.to(dtype), bank.to(dtype)
        out = torch.empty(CHUNK * len(bank), dtype=dtype)
        timed = {
            orientation: median_time(lambda a=a, b=b, out=out, t=transposed: chunked_product(a, b, out, t), repeats)[0]
            for orientation, transposed in (("(queries, bank)", False), ("(bank, queries)", True))
        }
        seconds = min(timed.values())
        name = f"{str(dtype).removeprefix('torch.')} matrix product alone"
        both = ", ".join(f"{o} {t:.3f} s" for o, t in timed.items())
        note = f"{CHUNK} queries per product; the faster orientation of {both}"
        rows.append(Row(part, name, seconds, None, flops / seconds / 1e9, note))
    return rows


def chunked_product(queries: torch.Tensor, bank: torch.Tensor, out: torch.Tensor, transposed: bool) -> None:
    """Every score, CHUNK queries at a time, into `out`: (queries, bank) or, transposed, (bank, queries)."""
    for q in queries.split(CHUNK):
        shape = (len(bank), len(q)) if transposed else (len(q), len(bank))
        result = out[: len(q) * len(bank)].view(shape)
        torch.mm(bank, q.T, out=result) if transposed else torch.mm(q, bank.T, out=result)


def floor_rows(part: str, bank: torch.Tensor, queries: torch.Tensor, k: int, repeats: int) -> list[Row]:
    """The exact search alone (index prepared once) and the part of it no certified fp32 answer avoids:
    the fp32 dot products of every query with the k rows of its answer, computed the way the re-rank
    computes its candidates' (one sampled product per chunk, each bank row read once). With the product,
    that bounds how close to the product the search can come on this machine's memory."""
    index = ExactIndex(bank, bf16=calibration.knn_backend() == "bf16")
    index.search(queries[:16], k)  # prepares the bf16 copy and the buffers
    stats = SearchStats()
    search_time, (_, neighbours) = median_time(lambda: index.search(queries, k, stats=stats), repeats)
    chunks = []
    for start in range(0, len(queries), CHUNK):
        answer = neighbours[start : start + CHUNK]
        rows, order = answer.reshape(-1).sort()
        query32 = F.normalize(queries[start : start + CHUNK], dim=1)
        chunks.append((query32, rows, order // k))
    read_time, _ = median_time(lambda: [index._rescore(q, rows, columns) for q, rows, columns in chunks], repeats)
    per_query = stats.reranked / max(stats.queries, 1)
    retried, fallbacks = stats.retried // repeats, stats.fallbacks // repeats
    note = f"index prepared once; {per_query:.0f} rows re-ranked per query, {retried} queries retried, "
    note += f"{fallbacks} of {len(queries)} fell back to fp32"
    return [
        Row(part, "ssl-coded exact search alone", search_time, None, note=note),
        Row(part, f"fp32 re-rank of the {k} answer rows alone", read_time, None, note="as the search re-ranks"),
    ]


MEMORY_METHODS = ("ssl-coded exact", "FAISS IndexFlatIP", "lightly knn_predict", "torch fp32 brute force (reference)")


def _status_kib(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def memory_probe(method: str, num_bank: int, num_queries: int, dim: int, k: int) -> None:
    """Run in a fresh process: print the peak resident memory (MiB) one method adds to its inputs while it
    predicts, index building included. Linux: the high-water mark is reset once the inputs exist."""
    generator = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(num_bank, dim, generator=generator), torch.randn(num_queries, dim, generator=generator)
    labels = torch.randint(0, 10, (num_bank,), generator=generator)
    jobs = {
        "ssl-coded exact": lambda: KnnBank(bank, labels).predict(queries, 10, k, 0.1),
        "FAISS IndexFlatIP": lambda: index_predict("flat", bank, labels, queries, 10, k, 0.1),
        "lightly knn_predict": lambda: lightly_predict(bank, labels, queries, 10, k, 0.1),
        "torch fp32 brute force (reference)": lambda: brute_force_predict(bank, labels, queries, 10, k, 0.1),
    }
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    jobs[method]()
    print(json.dumps({"peak_mib": (_status_kib("VmHWM") - before) / 1024}))


def memory_peaks(num_bank: int, num_queries: int, dim: int, k: int) -> dict[str, float]:
    """Each exact method's peak memory above its inputs (the bank and the queries), MiB, each in a fresh
    process so that no allocator cache left by another row hides it; empty off Linux."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        return {}
    # the children search with this process's backend, not one they would calibrate again under load
    env = {**os.environ, "SSL_CODED_KNN_BACKEND": calibration.knn_backend()}
    peaks = {}
    for method in MEMORY_METHODS:
        call = f"memory_probe({method!r}, {num_bank}, {num_queries}, {dim}, {k})"
        code = f"from benchmarks.bench_knn import memory_probe; {call}"
        root = Path(__file__).resolve().parents[1]
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"the memory probe of {method} failed:\n{done.stderr[-2000:]}")
        peaks[method] = json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]
    return peaks


def floor_summary(rows: list[Row], part: str) -> str:
    """The search against the faster product of its shape, and the floor the answers' re-rank puts under it."""
    seconds = {r.method: r.seconds for r in rows if r.part == part}
    product = min(seconds["float32 matrix product alone"], seconds["bfloat16 matrix product alone"])
    search = seconds["ssl-coded exact search alone"]
    reads = next(v for name, v in seconds.items() if name.startswith("fp32 re-rank"))
    return (
        f"exact search: {search / product:.2f}x the faster matrix product of its shape ({search:.3f} s against "
        f"{product:.3f} s); the product plus the fp32 re-rank of the answers alone: {(product + reads) / product:.2f}x"
    )


def ivf_rows(
    part: str,
    bank: torch.Tensor,
    labels: torch.Tensor,
    queries: torch.Tensor,
    k: int,
    t: float,
    repeats: int,
    nprobes: tuple[int, ...] = (8, 16, 32),
) -> list[Row]:
    """Exact against IVF on real features: search times, agreement of top-1, neighbour recall."""
    classes = int(labels.max()) + 1

    def top1(similarity: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        return rank_classes(similarity, labels[neighbours.clamp(min=0)], classes, t)[:, 0]

    stats = SearchStats()
    exact_time, (exact_similarity, exact_neighbours) = median_time(
        lambda: KnnBank(bank).search(queries, k, stats=stats), repeats
    )
    exact_top1 = top1(exact_similarity, exact_neighbours)
    flat_time, (flat_similarity, flat_neighbours) = median_time(
        lambda: make_index(bank, "flat").search(queries, k), repeats
    )
    fallbacks = f"{stats.fallbacks // repeats} of {len(queries)} queries fell back to fp32"
    rows = [
        Row(part, "ssl-coded exact", exact_time, 1.0, note=f"index preparation included; {fallbacks}"),
        Row(
            part,
            "FAISS IndexFlatIP",
            flat_time,
            float((top1(flat_similarity, flat_neighbours) == exact_top1).float().mean()),
        ),
    ]
    build_time, ivf = median_time(lambda: make_index(bank, "ivf"), repeats)
    for nprobe in nprobes:
        ivf.index.nprobe = nprobe
        search_time, (similarity, neighbours) = median_time(lambda: ivf.search(queries, k), repeats)
        agreement = float((top1(similarity, neighbours) == exact_top1).float().mean())
        recall = neighbour_recall(neighbours.numpy(), exact_neighbours.numpy())
        note = f"{exact_time / search_time:.1f}x faster than exact; neighbour recall@{k} {recall:.4f}"
        rows.append(Row(part, f"FAISS IVF nprobe {nprobe} (search)", search_time, agreement, note=note))
    nlist = ivf.index.nlist
    rows.append(Row(part, "FAISS IVF (training + adding the gallery, once)", build_time, None, note=f"nlist {nlist}"))
    rows.append(hnsw_row(part, bank, queries, k, exact_time, exact_neighbours, lambda s, n: top1(s, n) == exact_top1))
    return rows


def hnsw_row(
    part: str,
    bank: torch.Tensor,
    queries: torch.Tensor,
    k: int,
    exact_time: float,
    exact_neighbours: torch.Tensor,
    agrees: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    m: int = 16,
    ef: int = 200,
) -> Row:
    """FAISS HNSW (the other usual approximate index) on the same job, for the speed/agreement frontier."""
    index = faiss.IndexHNSWFlat(bank.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction, index.hnsw.efSearch = 64, ef
    start = time.perf_counter()
    index.add(F.normalize(bank, dim=1).numpy())
    build = time.perf_counter() - start
    start = time.perf_counter()
    similarity, neighbours = (torch.from_numpy(a) for a in index.search(F.normalize(queries, dim=1).numpy(), k))
    seconds = time.perf_counter() - start
    agreement = float(agrees(similarity.masked_fill(neighbours < 0, float("-inf")), neighbours).float().mean())
    recall = neighbour_recall(neighbours.numpy(), exact_neighbours.numpy())
    speedup = exact_time / seconds
    note = f"M {m}, efSearch {ef}, built in {build:.1f} s; {speedup:.1f}x faster than exact; recall {recall:.4f}"
    return Row(part, "FAISS HNSW (search)", seconds, agreement, note=note)


def probe_rows(part: str, features: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[Row]:
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (features[s] for s in ("train", "val", "test"))
    start = time.perf_counter()
    ours = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y)
    ours_time = time.perf_counter() - start

    start = time.perf_counter()
    joint_x, joint_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    scaler = StandardScaler().fit(joint_x)
    model = LogisticRegression(max_iter=1000).fit(scaler.transform(joint_x), joint_y)
    sklearn_top1 = float(model.score(scaler.transform(test_x), test_y))
    sklearn_time = time.perf_counter() - start
    return [
        Row(
            part,
            "ssl-coded linear probe",
            ours_time,
            ours.test_top1,
            note=f"{len(ours.val_top1)} C values, chose C={ours.best_c:g}",
        ),
        Row(part, "scikit-learn LogisticRegression", sklearn_time, sklearn_top1, note="C=1, one fit"),
    ]


def encoder_features(run: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from ssl_coded.eval.features import FeatureSource, cached_features

    from ssl_coded.training.checkpoints import load_trained

    trained = load_trained(run)
    source = FeatureSource(trained.features, trained.checkpoint_hash)
    splits = {"train": trained.splits.train, "val": trained.splits.val, "test": trained.splits.test}
    return {
        s: tuple(np.array(a) for a in cached_features(source, d, s, Path(run) / "features")) for s, d in splits.items()
    }


def format_table(rows: list[Row], baseline: str = "lightly knn_predict") -> str:
    lines = [
        "| part | method | seconds (median) | speed vs lightly | top-1 agreement / accuracy | GFLOP/s "
        "| peak MiB above inputs | note |"
    ]
    lines.append("|---|---|---|---|---|---|---|---|")
    base = {r.part: r.seconds for r in rows if r.method == baseline}
    for r in rows:
        if r.speed_vs_lightly is not None:
            ratio = f"{r.speed_vs_lightly:.2f}x"
        else:
            ratio = f"{base[r.part] / r.seconds:.2f}x" if r.part in base else ""
        agreement = "" if r.agreement is None else f"{r.agreement:.4f}"
        gflops = "" if r.gflops is None else f"{r.gflops:.0f}"
        peak = "" if r.peak_mib is None else f"{r.peak_mib:.0f}"
        lines.append(
            f"| {r.part} | {r.method} | {r.seconds:.3f} | {ratio} | {agreement} | {gflops} | {peak} | {r.note} |"
        )
    return "\n".join(lines)


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = list(dict.fromkeys(r.part for r in rows))
    fig, axes = plt.subplots(len(parts), 1, figsize=(8, 2.2 * len(parts)), squeeze=False)
    for ax, part in zip(axes[:, 0], parts, strict=True):
        chosen = [r for r in rows if r.part == part]
        ax.barh([r.method for r in chosen], [r.seconds for r in chosen], color="tab:blue")
        ax.invert_yaxis()
        ax.set_xlabel("seconds (median)")
        ax.set_title(part, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_knn_benchmark(
    num_bank: int = 50_000,
    num_queries: int = 10_000,
    dim: int = 512,
    k: int = 200,
    temperature: float = 0.1,
    repeats: int = 3,
    run: str | None = None,
    out_dir: str | Path = "runs/bench-knn",
    sklearn: bool = True,
    memory: bool = True,
) -> list[Row]:
    generator = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(num_bank, dim, generator=generator), torch.randn(num_queries, dim, generator=generator)
    labels = torch.randint(0, 10, (num_bank,), generator=generator)
    part = f"random {num_bank}x{dim}, {num_queries} queries, k={k}"
    include = ("ssl-coded exact", "FAISS IndexFlatIP", "lightly knn_predict")
    rows = knn_rows(
        part,
        bank,
        labels,
        queries,
        k,
        temperature,
        repeats,
        (*include, *(("scikit-learn KNeighborsClassifier",) if sklearn else ())),
    )
    rows += matmul_rows(part, bank, queries, repeats)
    rows += floor_rows(part, bank, queries, k, repeats)
    peaks = memory_peaks(num_bank, num_queries, dim, k) if memory else {}
    for row in rows:
        row.peak_mib = peaks.get(row.method) if row.part == part else None
    floor = floor_summary(rows, part)
    if run:
        features = encoder_features(run)
        gallery = torch.from_numpy(np.concatenate([features["train"][0], features["val"][0]]))
        gallery_y = torch.from_numpy(np.concatenate([features["train"][1], features["val"][1]]))
        test_x, _ = (torch.from_numpy(a) for a in features["test"])
        real = f"{Path(run).name} features {len(gallery)}x{gallery.shape[1]}, {len(test_x)} queries, k={k}"
        rows += ivf_rows(real, gallery, gallery_y, test_x, k, temperature, repeats)
        rows += probe_rows(f"{Path(run).name} linear probe (test top-1)", features)

    table = format_table(rows)
    threads = torch.get_num_threads()
    header = (
        f"kNN benchmark, {threads} threads, native bf16 flag: {native_bf16()}, repeats {repeats}\n"
        f"calibration: {calibration.describe()}\n{floor}"
    )
    print(f"\n{header}\n{table}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    measured = calibration.calibrate()
    facts = {
        "threads": threads,
        "native_bf16": native_bf16(),
        "calibration": {**asdict(measured), "knn_backend": calibration.knn_backend()},
        "floor": floor,
    }
    write_json(out / "bench-knn.json", {**facts, "rows": [asdict(r) for r in rows]})
    write_text(out / "bench-knn.md", f"{header}\n\n{table}\n")
    plot(rows, out / "bench-knn.png")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-bank", type=int, default=50_000)
    parser.add_argument("--num-queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", help="a pretraining run directory for parts 2 and 3 (its features are cached)")
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn's kNN (the slowest row)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes (a process each)")
    parser.add_argument("--out-dir", default="runs/bench-knn")
    args = parser.parse_args()
    run_knn_benchmark(
        args.num_bank,
        args.num_queries,
        args.dim,
        args.k,
        args.temperature,
        args.repeats,
        args.run,
        args.out_dir,
        not args.no_sklearn,
        not args.no_memory,
    )


if __name__ == "__main__":
    main()
