"""Effective rank of an encoder's features (RankMe): how many directions the embedding really uses.

A self-supervised encoder can fit its objective while its features collapse onto a few directions
(dimensional collapse), which kNN and linear probes then pay for. RankMe (Garrido et al., 2023)
measures it without labels: the exponential of the entropy of the singular values normalised to
sum to one. d equal singular values give d; a rank-r matrix gives at most r.

Run on a study's cells (the test features each cell cached for its kNN evaluation):

    python -m ssl_coded.eval.rank runs/studies/ssl-digits-regimes    # a table: row, seeds, mean +- std, per seed

Example:
    >>> effective_rank(torch.eye(8))  # 8.0
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ssl_coded.tables import markdown_table


def effective_rank(features: Tensor | np.ndarray, eps: float = 1e-7) -> float:
    """RankMe of an (n, d) feature matrix: exp(-sum p_k log p_k), p_k = sigma_k / sum(sigma) + eps."""
    matrix = torch.as_tensor(features, dtype=torch.float64)
    if matrix.ndim != 2 or min(matrix.shape) == 0:
        raise ValueError(f"features must be a non-empty (n, d) matrix, got shape {tuple(matrix.shape)}")
    singular = torch.linalg.svdvals(matrix)
    p = singular / singular.sum() + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def cell_features(study_runs: Path, split: str = "test") -> dict[str, dict[int, Path]]:
    """{row directory: {seed: the cell's cached features of `split`}} under a study's run directory."""
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(study_runs.glob(f"*/seed*/features/{split}-*.features.npy")):
        seed_dir = path.parent.parent
        seeds = found.setdefault(seed_dir.parent.name, {})
        seed = int(seed_dir.name.removeprefix("seed"))
        if seed in seeds:  # two checkpoints' features: which one the cell reported is not recorded
            raise ValueError(
                f"{path.parent} holds more than one cached {split} entry; remove the stale ones "
                "(or the folder, and rerun the cell's evaluation)"
            )
        seeds[seed] = path
    return found


def rank_table(study_runs: Path, split: str = "test") -> str:
    """A markdown table of each row's effective rank over its seeds."""
    rows = []
    for row, paths in cell_features(study_runs, split).items():
        ranks = [effective_rank(np.load(paths[seed])) for seed in sorted(paths)]
        spread = f" +- {statistics.stdev(ranks):.1f}" if len(ranks) > 1 else ""
        per_seed = ", ".join(f"{rank:.1f}" for rank in ranks)
        rows.append([row, str(len(ranks)), f"{statistics.mean(ranks):.1f}{spread}", per_seed])
    title = f"Effective rank (RankMe) of the {split} features, {study_runs}"
    return title + "\n" + markdown_table(["row", "seeds", "effective rank", "per seed"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_runs", type=Path, help="a study's run directory, e.g. runs/studies/NAME")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    args = parser.parse_args(argv)
    try:
        found = cell_features(args.study_runs, args.split)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not found:
        print(
            f"error: no cached {args.split} features under {args.study_runs}/*/seed*/features/; "
            "run the study first (`ssl-coded study FILE`)",
            file=sys.stderr,
        )
        return 2
    print(rank_table(args.study_runs, args.split))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
