"""What one coded-smoothing weight means in each method: the penalty beside the method's own loss, as a
ratio of values and of gradient norms on the hooked parameters, with the weight taken as is (`absolute`,
the penalty is weight x score) and relative to the main loss (`loss`: `hook.regularize(loss, floor)` scales
the penalty to weight x (loss - floor), its gradient direction kept; floor -1 for BYOL's and SimSiam's
negative cosine, the teacher's entropy for DINO, 0 for the others).

For each SSL method on the registry, its digits recipe with coded-smoothing on (default placement, weight
0.5, batch 16), three seeds: the method trains 50 steps (AdamW, lr 1e-3) on loss + penalty; at steps 1 and
50 the penalty / loss and the ratio of the two gradients' norms on the hooked submodule's parameters are
measured. The table gives medians over the seeds and, per weighting, the spread across methods (largest
over smallest): what a user who keeps one weight for every method meets.

Run: python -m benchmarks.bench_weight_scale [--seeds 3] [--steps 50] [--out-dir bench-weight-scale]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from ssl_coded.data import load_splits
from ssl_coded.tables import markdown_table
from ssl_coded.training.methods import build_method
from ssl_coded.training.methods.registry import METHODS
from ssl_coded.training.recipes import load_config

SSL_METHODS = [m for m in METHODS if m != "supervised"]


def measure(name: str, seed: int, steps: int, weighting: str, batch: int = 16) -> dict[int, dict[str, float]]:
    """{step: {"value_ratio", "grad_ratio", "loss", "penalty"}} at step 1 and the last step."""
    config = load_config(f"{name}-digits", ["coded.enabled=true", "coded.weight=0.5", f"seed={seed}"])
    splits = load_splits(config.data)
    torch.manual_seed(seed)
    method = build_method(config, splits)
    method.setup("fit")
    hook = method.coded_hook
    hooked = [p for p in hook.module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for step in range(1, steps + 1):
        index = torch.randperm(len(splits.train), generator=generator)[:batch]
        images = splits.train.take(index)[0]
        loss, _ = method.ssl_step(method.to_input(images))
        if weighting == "loss":
            total = hook.regularize(loss, floor=method.current_loss_floor())
            penalty = total - loss
        else:
            penalty = hook.pop_penalty()
            total = loss + penalty
        if step in (1, steps):
            floor = float(method.current_loss_floor())
            grads = [torch.autograd.grad(v, hooked, retain_graph=True, allow_unused=True) for v in (loss, penalty)]
            norms = [torch.sqrt(sum((g.float() ** 2).sum() for g in gs if g is not None)) for gs in grads]
            out[step] = {
                "loss": float(loss.detach()),
                "penalty": float(penalty.detach()),
                "value_ratio": float(penalty.detach()) / max(abs(float(loss.detach()) - floor), 1e-12),
                "grad_ratio": float(norms[1] / max(float(norms[0]), 1e-12)),
            }
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return out


def medians(runs: list[dict[int, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{step: {figure: median over the seeds' runs}}, steps as strings (JSON keys)."""
    figures = runs[0][next(iter(runs[0]))]
    return {str(step): {key: statistics.median(r[step][key] for r in runs) for key in figures} for step in runs[0]}


def spread_rows(results: dict[str, dict], steps: int) -> list[list[str]]:
    """Per weighting, step and ratio, the largest over the smallest across methods."""
    rows = []
    for weighting, by_method in results.items():
        for step in ("1", str(steps)):
            for ratio in ("value_ratio", "grad_ratio"):
                numbers = [abs(r[step][ratio]) for r in by_method.values() if r[step][ratio]]
                spread = max(numbers) / min(numbers) if numbers else float("nan")
                rows.append([weighting, step, ratio, f"{spread:.3g}"])
    return rows


def write_report(out_dir: Path, stem: str, results: dict, table: str, spreads: list[list[str]]) -> None:
    """Print the tables and write them, with the medians as JSON, to out_dir/stem.{md,json}."""
    spread = markdown_table(["weighting", "step", "ratio", "largest / smallest across methods"], spreads)
    print(table, spread, sep="\n\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=2))
    (out_dir / f"{stem}.md").write_text(table + "\n\n" + spread + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out-dir", type=Path, default=Path("bench-weight-scale"))
    parser.add_argument("--methods", nargs="*", default=SSL_METHODS)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict[str, dict] = {}
    for weighting in ("absolute", "loss"):
        for name in args.methods:
            runs = [measure(name, seed, args.steps, weighting) for seed in range(args.seeds)]
            results.setdefault(weighting, {})[name] = medians(runs)
            print(f"{weighting:8s} {name:12s} {results[weighting][name]}", flush=True)
    rows = []
    for weighting, by_method in results.items():
        for step in ("1", str(args.steps)):
            for name, r in by_method.items():
                v = r[step]
                figures = [f"{v['loss']:.4g}", *(f"{v[k]:.3g}" for k in ("penalty", "value_ratio", "grad_ratio"))]
                rows.append([weighting, name, step, *figures])
    table = markdown_table(["weighting", "method", "step", "loss", "penalty", "penalty / loss", "grad ratio"], rows)
    write_report(args.out_dir, "bench-weight-scale", results, table, spread_rows(results, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
