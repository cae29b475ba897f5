"""The cost of each regularizer the regime studies compare: training-step time against its baseline.

The studies record each cell's training time and peak memory, but cells run one after another (and
beside other work), so their time ratios carry the machine's drift. Here the methods of the study
rows are built from their recipes with the same initial weights and take turns on one fixed batch,
one forward + backward each per round; the ratio to the baseline (ERM for the classifiers, plain
SimCLR or BYOL for theirs) is taken per round and the median over rounds is printed, beside the ratio of the
steps' FLOPs (torch's FlopCounterMode): what the extra passes should cost (coded at the input with
N = K runs the network twice, i-Mix runs one more view of two).

Run: python -m benchmarks.bench_regularizers [--rounds 15 --threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from ssl_coded.data import Splits, load_splits
from ssl_coded.search import calibration
from ssl_coded.training.methods import build_method
from ssl_coded.training.recipes import load_config

BLOCK_3 = "backbone.features.3"  # the small CNN's fourth conv block
COMMON = ["trainer.precision=32-true", "data.max_train=512", "data.max_test=64"]
# (group, row, recipe, overrides); the first row of a group is its baseline
ROWS = [
    ("classifier", "ERM", "supervised-fashion-mnist", []),
    ("classifier", "mixup", "supervised-fashion-mnist", ["method.regularizer=mixup"]),
    ("classifier", "Manifold Mixup", "supervised-fashion-mnist", ["method.regularizer=manifold_mixup"]),
    ("classifier", "noise", "supervised-fashion-mnist", ["method.regularizer=noise"]),
    ("classifier", "coded (input)", "supervised-fashion-mnist", ["method.regularizer=coded"]),
    ("classifier", "random mixing", "supervised-fashion-mnist", ["method.regularizer=coded", "coded.kind=mix"]),
    ("SimCLR", "SimCLR", "simclr-fashion-mnist", []),
    ("SimCLR", "+ i-Mix", "simclr-fashion-mnist", ["method.mixing=imix"]),
    ("SimCLR", "+ coded (embedding)", "simclr-fashion-mnist", ["coded.enabled=true"]),
    ("SimCLR", "+ random mixing", "simclr-fashion-mnist", ["coded.enabled=true", "coded.kind=mix"]),
    ("SimCLR", "+ coded (input)", "simclr-fashion-mnist", ["coded.enabled=true", "coded.placement=input"]),
    ("SimCLR", "+ coded (block 3)", "simclr-fashion-mnist", ["coded.enabled=true", f"coded.placement={BLOCK_3}"]),
    ("BYOL", "BYOL", "byol-fashion-mnist", []),
    ("BYOL", "+ i-Mix", "byol-fashion-mnist", ["method.mixing=imix"]),
    ("BYOL", "+ coded (embedding)", "byol-fashion-mnist", ["coded.enabled=true"]),
    ("BYOL", "+ random mixing", "byol-fashion-mnist", ["coded.enabled=true", "coded.kind=mix"]),
]


def build(recipe: str, overrides: list[str], batch_size: int, splits_of: dict[str, Splits]):
    config = load_config(recipe, [*COMMON, f"trainer.batch_size={batch_size}", *overrides])
    if recipe not in splits_of:
        splits_of[recipe] = load_splits(config.data)
    splits = splits_of[recipe]
    torch.manual_seed(0)  # the same initial weights in every row of a recipe
    method = build_method(config, splits)
    method.log = lambda *args, **kwargs: None  # no trainer: logging is not part of the step
    method.log_dict = lambda *args, **kwargs: None
    method.setup("fit")  # attaches the coded hook where the recipe asks for it
    # BYOL's momentum schedule reads the run's length and step from its trainer: a fixed stand-in
    method._trainer = SimpleNamespace(estimated_stepping_batches=1000, global_step=0)
    method.train()
    return method, splits.train.take(torch.arange(batch_size))


def timed_step(method, batch: tuple[Tensor, Tensor]) -> float:
    start = time.perf_counter()
    method.zero_grad(set_to_none=True)
    method.training_step(batch, 0).backward()
    return time.perf_counter() - start


def step_flops(method, batch: tuple[Tensor, Tensor]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        method.training_step(batch, 0).backward()
    return counter.get_total_flops()


def run(rounds: int, batch_size: int) -> dict[tuple[str, str], dict[str, float | list[float]]]:
    """{(group, row): {"seconds": per-round step times, "ratio": median per-round ratio to the group's
    baseline, "flop_ratio": FLOPs of one step over the baseline's}}."""
    splits_of: dict[str, Splits] = {}  # one dataset load per recipe
    built = {(group, row): build(recipe, overrides, batch_size, splits_of) for group, row, recipe, overrides in ROWS}
    flops = {}
    for key, (method, batch) in built.items():  # also the warm-up: first calls allocate and pick kernels
        torch.manual_seed(0)
        flops[key] = step_flops(method, batch)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in built}
    for _ in range(rounds):
        for key, (method, batch) in built.items():
            times[key].append(timed_step(method, batch))
    results: dict[tuple[str, str], dict[str, float | list[float]]] = {}
    baseline: dict[str, tuple[str, str]] = {}
    for group, row, _, _ in ROWS:
        base = baseline.setdefault(group, (group, row))
        ratios = [t / b for t, b in zip(times[group, row], times[base], strict=True)]
        results[group, row] = {
            "seconds": times[group, row],
            "ratio": statistics.median(ratios),
            "flop_ratio": flops[group, row] / flops[base],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args.rounds, args.batch_size)
    threads = torch.get_num_threads()
    print(f"{calibration.cpu_model()}, {threads} threads, batch {args.batch_size}, {args.rounds} rounds, fp32")
    print(f"calibration: {calibration.describe()}")
    print("| group | row | step ms (median) | x baseline (median of per-round ratios) | x baseline FLOPs |")
    print("|---|---|---|---|---|")
    for (group, row), result in results.items():
        seconds = statistics.median(result["seconds"])
        print(f"| {group} | {row} | {1000 * seconds:.0f} | {result['ratio']:.2f} | {result['flop_ratio']:.2f} |")


if __name__ == "__main__":
    main()
