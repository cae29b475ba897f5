"""The one engine for seeds: spreads over seeds and differences paired by seed, as `ssl-coded study` and
the attack reports over seeds (`eval/robustness/seeds.py`) compute and write them; and CSV text.

Example:
    >>> format_spread(*spread([0.85, 0.86, 0.84]))
    '0.8500 +- 0.0100'
    >>> delta, std, p, pairs = paired_by_seed({0: 0.85, 1: 0.86, 2: 0.84}, {0: 0.84, 1: 0.85, 2: 0.84, 3: 0.9})
    >>> format_difference(delta, std, p, pairs)
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def spread(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for a single value) and count of per-seed values."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def format_spread(mean: float, std: float, count: int, digits: int = 4) -> str:
    """`0.8500 +- 0.0100`; a single value has no spread."""
    return f"{mean:.{digits}f}" + (f" +- {std:.{digits}f}" if count > 1 else "")


def paired_by_seed(ours: Mapping[int, float], theirs: Mapping[int, float]) -> tuple[float, float, float, int] | None:
    """`paired_difference` on the seeds both have (pairing removes the split and initialisation noise the two
    share), and the number of pairs; None when they share no seed."""
    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        return None
    return (*paired_difference([ours[s] for s in seeds], [theirs[s] for s in seeds]), len(seeds))


def paired_difference(ours: list[float], theirs: list[float]) -> tuple[float, float, float]:
    """Mean and std of the differences ours - theirs (paired by position), and the paired t-test's
    two-sided p-value: nan under 2 pairs or when every difference is the same (nothing to test against)."""
    from scipy.stats import ttest_rel

    diffs = [a - b for a, b in zip(ours, theirs, strict=True)]
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    p = float(ttest_rel(ours, theirs).pvalue) if std > 1e-12 else math.nan
    return statistics.mean(diffs), std, p


def format_difference(delta: float, std: float, p: float, pairs: int) -> str:
    """A paired difference in points (x100): `+0.13 +- 0.08 (p 0.097)`; one pair has no spread or test."""
    points = f"{100 * delta:+.2f}"
    if pairs < 2:
        return points
    return f"{points} +- {100 * std:.2f} (p {'-' if math.isnan(p) else f'{p:.2g}'})"


def csv_text(rows: list[dict[str, Any]], fields: list[str]) -> str:
    """CSV of dict rows with a header; missing fields are left empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
