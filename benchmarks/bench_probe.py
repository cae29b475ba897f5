"""Linear probe benchmark: the torch L-BFGS path over C against one scikit-learn fit, side by side.

Each round times, on the same features,
- the probe's whole job (`linear_probe`, solver "torch"): standardise, fit every C of the grid on
  train from the strongest regularisation to the weakest (each fit warm-started from the previous),
  score validation, refit train + validation at the chosen C, score test;
- one scikit-learn `LogisticRegression()` fit at its default C=1 on train + validation, already
  standardised (the fit alone: the yardstick the probe should stay within 1.5x of);
and, once, in the first round, unless --no-grid: the previous probe (`solver="sklearn"`, one cold
scikit-learn fit per C), which is slow. The two timed in every round take turns, so drift of the
machine hits both alike; the ratio is taken per round and its median printed. Accuracy: the probe's
test top-1 against scikit-learn's at the C the probe chose, fitted on the same standardised train +
validation (target: within 0.3 points).

Features: a synthetic Gaussian mixture by default (10 classes, ReLU of a random map of a low-rank
mixture plus noise: overlapping classes, so neither top-1 nor the choice of C is trivial),
`--features FILE.npz` (arrays train_x, train_y, val_x, val_y, test_x, test_y), or
`--dataset fashion-mnist` raw pixels (scaled to [0, 1]; `--max-train`, `--max-test` as in
DataConfig). Torch and scikit-learn get the same thread count (--threads, through threadpoolctl
for scikit-learn's BLAS and OpenMP).
Writes bench-probe.json and bench-probe.md into --out-dir.

Run: python -m benchmarks.bench_probe [--rounds 3] [--dataset fashion-mnist --max-train 2000] [--no-grid]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from ssl_coded.eval.linear_probe import C_GRID, linear_probe
from threadpoolctl import threadpool_limits

from ssl_coded.io import write_json, write_text

Splits = dict[str, tuple[np.ndarray, np.ndarray]]
SPLITS = ("train", "val", "test")


def mixture_features(
    num_train: int = 20_000, num_eval: int = 5_000, dim: int = 256, classes: int = 10, seed: int = 0
) -> Splits:
    """Encoder-like features: class means in a 32-dimensional latent space with overlapping clusters,
    mapped to `dim` by a random matrix, plus noise, through a ReLU (nonnegative, correlated, not Gaussian)."""
    rng = np.random.default_rng(seed)
    latent = min(32, dim)
    means = rng.normal(size=(classes, latent))
    mixing = rng.normal(size=(latent, dim)) / np.sqrt(latent)
    splits = {}
    for name, n in zip(SPLITS, (num_train, num_eval, num_eval), strict=True):
        labels = rng.integers(0, classes, n)
        z = means[labels] + 1.6 * rng.normal(size=(n, latent))
        x = np.maximum(z @ mixing + 0.5 * rng.normal(size=(n, dim)), 0.0)
        splits[name] = (x.astype(np.float32), labels)
    return splits


def npz_features(path: str | Path) -> Splits:
    data = np.load(path)
    return {s: (np.asarray(data[f"{s}_x"], dtype=np.float32), np.asarray(data[f"{s}_y"])) for s in SPLITS}


def dataset_features(name: str, max_train: int = 0, max_test: int = 0, root: str = "") -> Splits:
    """Raw pixels of a dataset's splits, flattened and scaled to [0, 1]."""
    from ssl_coded.data import load_splits
    from ssl_coded.training.config import DataConfig

    splits = load_splits(DataConfig(name=name, root=root, max_train=max_train, max_test=max_test))
    return {
        s: (d.images.flatten(1).float().div(255).numpy(), d.labels.numpy())
        for s, d in zip(SPLITS, (splits.train, splits.val, splits.test), strict=True)
    }


def sklearn_fit(joint_s: np.ndarray, joint_y: np.ndarray, c: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=1000).fit(joint_s, joint_y)


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    return {
        "cpu": model,
        "cores": torch.multiprocessing.cpu_count(),
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
    }


def run_probe_benchmark(
    features: Splits,
    rounds: int = 3,
    grid: bool = True,
    threads: int | None = None,
    device: str = "cpu",
    out_dir: str | Path = "runs/bench-probe",
    label: str = "",
) -> dict[str, Any]:
    """Time the probe against one scikit-learn fit; print and write the table; returns the results
    (per-round seconds, the median ratio, accuracies at the chosen C)."""
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (features[s] for s in SPLITS)
    joint_x, joint_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    scaler = StandardScaler().fit(joint_x)
    joint_s, test_s = scaler.transform(joint_x), scaler.transform(test_x)
    seconds: dict[str, list[float]] = {"probe": [], "sklearn C=1 fit": []}
    grid_result, grid_seconds = None, None
    with threadpool_limits(threads):
        for index in range(rounds):
            # alternate who goes first, so neither always runs on a warmer (or busier) machine
            order = ("probe", "sklearn C=1 fit") if index % 2 == 0 else ("sklearn C=1 fit", "probe")
            for name in order:
                start = time.perf_counter()
                if name == "probe":
                    probe = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, device=device)
                else:
                    one_fit = sklearn_fit(joint_s, joint_y)
                seconds[name].append(time.perf_counter() - start)
            if grid and index == 0:
                start = time.perf_counter()
                grid_result = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, solver="sklearn")
                grid_seconds = time.perf_counter() - start
        at_chosen = one_fit if probe.best_c == 1.0 else sklearn_fit(joint_s, joint_y, probe.best_c)
    per_round = [p / s for p, s in zip(seconds["probe"], seconds["sklearn C=1 fit"], strict=True)]
    sklearn_top1 = float(at_chosen.score(test_s, test_y))
    result: dict[str, Any] = {
        "label": label,
        "shape": {s: list(features[s][0].shape) for s in SPLITS},
        "classes": len(np.unique(joint_y)),
        "threads": threads,
        "device": device,
        "machine": machine(),
        "rounds": rounds,
        "seconds": seconds,
        "median_seconds": {name: statistics.median(times) for name, times in seconds.items()},
        "ratio": statistics.median(per_round),  # probe / one scikit-learn fit, median of the per-round ratios
        "per_round_ratio": per_round,
        "sklearn_c1_iterations": int(one_fit.n_iter_.max()),
        "probe": {
            "best_c": probe.best_c,
            "val_top1": {str(c): v for c, v in probe.val_top1.items()},
            "test_top1": probe.test_top1,
            "iterations": probe.iterations,
        },
        "sklearn_at_chosen_c": {"c": probe.best_c, "test_top1": sklearn_top1},
        "top1_delta_points": 100 * (probe.test_top1 - sklearn_top1),
        "grid": None,
    }
    if grid_result is not None:
        result["grid"] = {
            "seconds": grid_seconds,
            "best_c": grid_result.best_c,
            "val_top1": {str(c): v for c, v in grid_result.val_top1.items()},
            "test_top1": grid_result.test_top1,
            "iterations": grid_result.iterations,
        }
    table = format_table(result)
    print(f"\n{table}")
    out = Path(out_dir)
    write_json(out / "bench-probe.json", result)
    write_text(out / "bench-probe.md", table + "\n")
    return result


def format_table(result: dict[str, Any]) -> str:
    shape = result["shape"]
    facts = result["machine"]
    header = (
        f"Linear probe, {result['label'] or 'features'}: train {shape['train'][0]}, val {shape['val'][0]}, "
        f"test {shape['test'][0]}, dim {shape['train'][1]}, {result['classes']} classes, C grid {list(C_GRID)}; "
        f"{facts['cpu']}, {result['threads']} threads, device {result['device']}, torch {facts['torch']}, "
        f"scikit-learn {facts['scikit-learn']}; {result['rounds']} interleaved rounds"
    )
    median = result["median_seconds"]
    probe, at_chosen = result["probe"], result["sklearn_at_chosen_c"]
    iterations = ", ".join(f"{k} {v}" for k, v in probe["iterations"].items())
    lines = [
        header,
        "",
        "| run | seconds (median) | vs one scikit-learn fit | chosen C | test top-1 | note |",
        "|---|---|---|---|---|---|",
        f"| ssl-coded probe (torch L-BFGS, whole selection) | {median['probe']:.3f} | {result['ratio']:.2f}x "
        f"(target <= 1.5x) | {probe['best_c']:g} | {probe['test_top1']:.4f} | iterations: {iterations} |",
        f"| scikit-learn LogisticRegression, one fit at C=1 | {median['sklearn C=1 fit']:.3f} | 1.00x | 1 | | "
        f"{result['sklearn_c1_iterations']} iterations, train + val standardised beforehand |",
        f"| scikit-learn at the probe's C | | | {at_chosen['c']:g} | {at_chosen['test_top1']:.4f} | "
        f"probe - scikit-learn = {result['top1_delta_points']:+.2f} points (target within 0.3) |",
    ]
    grid = result["grid"]
    if grid is not None:
        ratio = grid["seconds"] / median["sklearn C=1 fit"]
        grid_iterations = ", ".join(f"{k} {v}" for k, v in grid["iterations"].items())
        lines.append(
            f"| previous probe (scikit-learn per C, cold) | {grid['seconds']:.3f} | {ratio:.2f}x | "
            f"{grid['best_c']:g} | {grid['test_top1']:.4f} | one run; iterations: {grid_iterations} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", help="an .npz with train_x, train_y, val_x, val_y, test_x, test_y")
    parser.add_argument("--dataset", help="raw pixels of a dataset instead (fashion-mnist, digits, ...)")
    parser.add_argument("--root", default="", help="the dataset's folder ('' = its usual place)")
    parser.add_argument("--max-train", type=int, default=0, help="with --dataset: at most this many train images")
    parser.add_argument("--max-test", type=int, default=0, help="with --dataset: at most this many val/test images")
    parser.add_argument("--num-train", type=int, default=20_000, help="synthetic: train size")
    parser.add_argument("--num-eval", type=int, default=5_000, help="synthetic: validation and test size each")
    parser.add_argument("--dim", type=int, default=256, help="synthetic: feature dimension")
    parser.add_argument("--classes", type=int, default=10, help="synthetic: classes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch and scikit-learn threads (default torch's)")
    parser.add_argument("--device", default="cpu", help="where the probe runs (cpu, cuda)")
    parser.add_argument("--no-grid", action="store_true", help="skip the previous probe (a cold fit per C: slow)")
    parser.add_argument("--out-dir", default="runs/bench-probe")
    args = parser.parse_args(argv)
    if args.features:
        features, label = npz_features(args.features), Path(args.features).name
    elif args.dataset:
        features = dataset_features(args.dataset, args.max_train, args.max_test, args.root)
        label = f"{args.dataset} raw pixels"
    else:
        features = mixture_features(args.num_train, args.num_eval, args.dim, args.classes)
        label = "synthetic Gaussian mixture"
    return run_probe_benchmark(
        features, args.rounds, not args.no_grid, args.threads, args.device, args.out_dir, label=label
    )


if __name__ == "__main__":
    main()
