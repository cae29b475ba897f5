"""How much each coding's decoder amplifies errors in the coded outputs: the numbers behind the
random-mixing ablation's definition.

Coded-smoothing scores D @ f(E @ x) against f(x); f is not linear, so f(E @ x) differs from E @ f(x)
and D carries that difference into the decoded outputs. norm_inf(D), its largest absolute row sum, is
the worst-case factor from an error in the coded outputs to one in a decoded output, and cond(E)
that of the least-squares decode. Printed for the interpolants at the recipes' settings and for
random pairwise mixing as it is drawn now (the larger part t ~ U(0, 1/2)) and as it was drawn before
(t ~ U(0, 1), rebuilt here from the current draws), as medians and maxima over random draws.

Run: python -m benchmarks.bench_decoders [--draws 50 --batch 128]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ssl_coded.coding import CodingScheme


def with_either_item_larger(enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ablation before the fix, from the current one: swapping each mixture's two weights with
    probability 1/2 turns t ~ U(0, 1/2) into t ~ U(0, 1), so either item may be the larger part."""
    enc = enc.clone()
    for row in torch.nonzero(torch.rand(len(enc)) < 0.5).flatten():
        items = torch.nonzero(enc[row]).flatten()
        enc[row, items] = enc[row, items.flip(0)]  # one item (a pair of an item with itself): no change
    return enc, torch.linalg.pinv(enc)


def amplification(enc: torch.Tensor, dec: torch.Tensor) -> tuple[float, float]:
    """(norm_inf(D), cond(E))."""
    return dec.abs().sum(dim=1).max().item(), torch.linalg.cond(enc).item()


CODINGS = ("spline (lambda 1e-2)", "berrut", "random mixing", "random mixing, t ~ U(0, 1) (before)")


def draw(coding: str, batch: int, ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(E, D) of one coding in float64, from the recipes' CodingScheme."""
    if coding.endswith("(before)"):
        return with_either_item_larger(CodingScheme("mix", coded_ratio=ratio).matrices(batch, torch.float64)[0])
    kind = {"spline (lambda 1e-2)": "spline", "berrut": "berrut", "random mixing": "mix"}[coding]
    return CodingScheme(kind, coded_ratio=ratio).matrices(batch, torch.float64)


def run(draws: int = 50, batch: int = 128, seed: int = 0) -> dict[str, dict[str, float]]:
    torch.manual_seed(seed)
    results = {}
    for ratio in (1.0, 2.0):
        for coding in CODINGS:
            repeats = draws if coding.startswith("random") else 1  # the interpolants are fixed matrices
            norms, conds = zip(*(amplification(*draw(coding, batch, ratio)) for _ in range(repeats)), strict=True)
            results[f"N = {ratio:g}K, {coding}"] = {
                "norm_median": statistics.median(norms),
                "norm_max": max(norms),
                "cond_median": statistics.median(conds),
                "cond_max": max(conds),
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=50, help="random draws per mixing row")
    parser.add_argument("--batch", type=int, default=128, help="K, the batch that is coded")
    args = parser.parse_args()
    results = run(args.draws, args.batch)
    print(f"K = {args.batch}; random rows: median and max over {args.draws} draws (seed 0)")
    print("| coding | norm_inf(D) median | norm_inf(D) max | cond(E) median | cond(E) max |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['norm_median']:.3g} | {r['norm_max']:.3g} | {r['cond_median']:.3g} | {r['cond_max']:.3g} |"
        )


if __name__ == "__main__":
    main()
