"""Overhead of the coded branch: training-step time with and without it, against the FLOP prediction.

SimCLR (small CNN + lightly's projection head, two views, NT-Xent, SGD) on random images. Three
models with the same initial weights take turns, one step each per round, so drift of the machine
hits all of them alike; the ratio to the baseline is taken per round and the median is printed.
The coded branch codes the first view once per step (max_passes_per_step=1), placed
- at the embedding: on the projection head's input (only the head runs on coded samples),
- at the input: on the whole model (backbone and head run on N coded images), in one call or in
  chunks of K (coded_batch_size=K),
and a reference row runs the same extra forward over N random mixtures without any coding
machinery: the cost of the extra samples alone, at that batch size, on this machine.
The FLOP prediction comes from torch's FlopCounterMode over one full step of each model; for the
input placement it is close to 1 + N/(2K).

Also times building E and D for K=512, N=256 (closed form) against SciPy fitted column by column.

Run: python -m benchmarks.bench_overhead [--batch-size 256 --coded-ratio 1 --rounds 15]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any

import numpy as np
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ssl_coded.coding import chebyshev_first_kind, chebyshev_second_kind, coding_matrices_float64
from ssl_coded.hook import CodedSmoothingHook
from ssl_coded.regularizer import CodedSmoothing
from ssl_coded.training.backbones import SmallCNN


class SimCLRModel(nn.Module):
    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.backbone = SmallCNN(in_channels)
        self.projection_head = SimCLRProjectionHead(self.backbone.feature_dim, 256, 64)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection_head(self.backbone(x))


# name: (submodule the coded branch sits on or None, coded samples per fn call or None = all N)
VARIANTS: dict[str, tuple[str | None, str | None]] = {
    "baseline": (None, None),
    "embedding": ("projection_head", None),
    "input": ("", None),
    "input, chunks of K": ("", "K"),
    "plain mix": ("mix", None),  # reference: an extra forward over N random mixtures, no coding
}


def make_step(model: SimCLRModel, placement: str | None, coded_ratio: float, coded_batch_size: int | None = None):
    hook, mix = None, None
    criterion = NTXentLoss(temperature=0.2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    if placement == "mix":
        mix = lambda x: torch.rand(round(coded_ratio * len(x)), len(x)).softmax(1) @ x.flatten(1)  # noqa: E731
    elif placement is not None:
        reg = CodedSmoothing(weight=0.1, coded_ratio=coded_ratio, coded_batch_size=coded_batch_size)
        hook = CodedSmoothingHook(model, reg, submodule=placement, max_passes_per_step=1)

    def step(view0: torch.Tensor, view1: torch.Tensor) -> None:
        loss = criterion(model(view0), model(view1))
        if hook is not None:
            loss = loss + hook.pop_penalty()
        if mix is not None:
            loss = loss + 0.1 * model(mix(view0).view(-1, *view0.shape[1:])).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_flops(step, views) -> int:
    with FlopCounterMode(display=False) as counter:
        step(*views)
    return counter.get_total_flops()


def time_build(k: int = 512, n: int = 256, repeats: int = 5) -> tuple[float, float, float]:
    """Median seconds of a cold closed-form build, of a cached call, and of SciPy (one run)."""
    from scipy.interpolate import make_smoothing_spline

    cold = []
    for _ in range(repeats):
        coding_matrices_float64.cache_clear()
        start = time.perf_counter()
        coding_matrices_float64(k, n, "spline", 1e-2, 1e-2, "scipy")
        cold.append(time.perf_counter() - start)
    start = time.perf_counter()
    coding_matrices_float64(k, n, "spline", 1e-2, 1e-2, "scipy")
    cached = time.perf_counter() - start
    alpha, beta = chebyshev_first_kind(k), chebyshev_second_kind(n)
    start = time.perf_counter()
    np.stack([make_smoothing_spline(alpha, e, lam=1e-2)(beta) for e in np.eye(k)], axis=1)
    return statistics.median(cold), cached, time.perf_counter() - start


def run_overhead_benchmark(
    batch_size: int = 256, image_size: int = 28, coded_ratio: float = 1.0, rounds: int = 15, threads: int | None = None
) -> dict[str, dict[str, Any]]:
    """Print the table; returns {placement: {"ratio": median per-round time ratio to the baseline,
    "flop_ratio": predicted, "seconds": the per-round times}}."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = SimCLRModel(in_channels=1)
    steps = {
        name: make_step(copy.deepcopy(base), place, coded_ratio, batch_size if chunk else None)
        for name, (place, chunk) in VARIANTS.items()
    }
    views = (torch.randn(batch_size, 1, image_size, image_size), torch.randn(batch_size, 1, image_size, image_size))
    flops = {name: step_flops(step, views) for name, step in steps.items()}
    for step in steps.values():  # warm-up
        step(*views)

    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step(*views)
            times[name].append(time.perf_counter() - start)

    n = round(coded_ratio * batch_size)
    print(
        f"SimCLR step, SmallCNN, batch K={batch_size}, {image_size}x{image_size}, N={n}, "
        f"{torch.get_num_threads()} threads, {rounds} interleaved rounds"
    )
    print(f"{'variant':<20} {'median ms':>10} {'ratio (median)':>15} {'FLOP ratio':>11} {'measured/FLOP':>14}")
    ratios = {}
    for name in steps:
        ratio = statistics.median(t / b for t, b in zip(times[name], times["baseline"], strict=True))
        flop_ratio = flops[name] / flops["baseline"]
        ratios[name] = {"ratio": ratio, "flop_ratio": flop_ratio, "seconds": times[name]}
        print(
            f"{name:<20} {1e3 * statistics.median(times[name]):>10.1f} {ratio:>15.3f} "
            f"{flop_ratio:>11.3f} {ratio / flop_ratio:>14.3f}"
        )
    print(f"simple prediction for the input placement, 1 + N/(2K) = {1 + n / (2 * batch_size):.3f}")

    cold, cached, scipy_seconds = time_build()
    print(
        f"build E, D (spline, K=512, N=256): closed form {cold:.3f} s (median of 5), "
        f"cached call {1e6 * cached:.1f} us, SciPy column by column {scipy_seconds:.2f} s"
    )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--coded-ratio", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    run_overhead_benchmark(args.batch_size, args.image_size, args.coded_ratio, args.rounds, args.threads)


if __name__ == "__main__":
    main()
