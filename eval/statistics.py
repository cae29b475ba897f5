"""Statistics shared by the reports: differences paired by seed, and CSV text.

Example:
    >>> delta, std, p = paired_difference([0.85, 0.86, 0.84], [0.84, 0.85, 0.84])
    >>> format_difference(delta, std, p, pairs=3)
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from typing import Any


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
