"""bf16 autocast against fp32 on this CPU: the step time of a recipe's backbone in both precisions.

Where the CPU multiplies bf16 quickly bf16 autocast is the faster one; where it does not (emulated,
or native but slow), `ssl_coded.training.precision.training_precision` trains a `bf16-mixed` recipe
in fp32 instead, as `ssl_coded.search.calibration` decides from a few timed products. This measures the
whole step that choice stands for: one training step (forward, backward,
SGD update) of the recipe's backbone on a batch of its training images, fp32 and bf16 autocast
taking turns (one step each per round, alternating which goes first); the ratio is taken per round
and the median printed.

Run: python -m benchmarks.bench_precision [--recipe simclr-fashion-mnist --batch-size 512 --rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from ssl_coded.data import load_splits
from ssl_coded.search import calibration
from ssl_coded.search.hardware import native_bf16
from ssl_coded.training.methods import build_method
from ssl_coded.training.precision import training_precision
from ssl_coded.training.recipes import load_config


def make_step(recipe: str, batch_size: int, bf16: bool) -> Callable[[], None]:
    """One training step of the recipe's backbone on `batch_size` of its training images, built and fed
    as the recipe's method does it (memory format included), under bf16 autocast or in fp32; the same
    initial weights either way."""
    config = load_config(recipe, [f"data.max_train={batch_size}", "data.max_test=1"])
    splits = load_splits(config.data)
    torch.manual_seed(0)
    method = build_method(config, splits)
    if config.trainer.channels_last:  # what the method's setup does before training
        method.to(memory_format=torch.channels_last)
    backbone, images = method.backbone, method.to_input(splits.train.images[:batch_size])
    optimizer = torch.optim.SGD(backbone.parameters(), lr=1e-3)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = backbone(images).float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def run_precision_benchmark(recipe: str, batch_size: int, rounds: int) -> dict[str, Any]:
    """Median seconds per step in fp32 and bf16, the median per-round ratio bf16 / fp32, and the
    per-round times ("rounds": {"fp32": [...], "bf16 autocast": [...]})."""
    steps = {"fp32": make_step(recipe, batch_size, False), "bf16 autocast": make_step(recipe, batch_size, True)}
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(rounds):
        for name, step in list(steps.items())[:: 1 if i % 2 == 0 else -1]:  # alternate who goes first
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    ratio = statistics.median(b / f for b, f in zip(times["bf16 autocast"], times["fp32"], strict=True))
    result: dict[str, Any] = {name: statistics.median(t) for name, t in times.items()}
    result |= {"ratio": ratio, "rounds": times}
    print(
        f"{recipe} backbone, batch {batch_size}, {torch.get_num_threads()} threads, {rounds} interleaved rounds; "
        f"native bf16 flag: {native_bf16()}"
    )
    print(f"calibration: {calibration.describe()}")
    print(f"fp32 {result['fp32']:.3f} s/step, bf16 autocast {result['bf16 autocast']:.3f} s/step (median)")
    print(f"bf16 / fp32 = {ratio:.2f} (median of per-round ratios)")
    print(f"bf16-mixed on this CPU trains as: {training_precision('bf16-mixed', 'cpu')}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="simclr-fashion-mnist")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    run_precision_benchmark(args.recipe, args.batch_size, args.rounds)


if __name__ == "__main__":
    main()
