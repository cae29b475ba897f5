"""Decoding fidelity of randomized coded inference on a trained classifier, per family, N/K and lambda.

RCI is worthless until the decoded logits are close to the direct ones, and a poorly chosen scheme
decodes far from them (docs/RESULTS.md has the measured sweep). This sweep measures, on test
images, for each coding scheme: the relative error
||decoded - direct|| / ||direct|| of the logits, the accuracy of the decoded logits, and its gap to
the direct accuracy; the RCI defaults (`inference` section of a recipe) come from it.

Example:
    >>> rows = fidelity_sweep(model.classify, images01, labels, group_size=64)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ssl_coded.coding import CodingScheme
from ssl_coded.inference import RandomizedCodedClassifier
from ssl_coded.tables import markdown_table

DEFAULT_GRID: tuple[tuple[str, float, float, str], ...] = (
    # (kind, N/K, lambda, lambda units)
    ("spline", 1.0, 1e-4, "scipy"),  # the first RCI setting tried (K = N, SciPy's lambda scaling)
    *(("spline", r, lam, "spacing") for r in (1.0, 2.0, 4.0) for lam in (1e-3, 1e-2, 1e-1)),
    *(("berrut", r, 0.0, "spacing") for r in (1.0, 2.0, 4.0, 8.0)),
)


@dataclass
class FidelityRow:
    kind: str
    coded_ratio: float
    lambda_: float
    lambda_units: str
    group_size: int
    relative_error: float
    decoded_accuracy: float
    direct_accuracy: float

    @property
    def gap(self) -> float:
        return self.direct_accuracy - self.decoded_accuracy


@torch.no_grad()
def fidelity_sweep(
    classify: Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    group_size: int = 64,
    grid: tuple[tuple[str, float, float, str], ...] = DEFAULT_GRID,
    seed: int = 0,
) -> list[FidelityRow]:
    """One row per coding scheme: RCI (one draw) against the direct logits on the same images."""
    direct = torch.cat([classify(x) for x in images.split(512)]).float()
    direct_accuracy = float((direct.argmax(1) == labels).float().mean())
    rows = []
    for kind, ratio, lam, units in grid:
        size = 128 if units == "scipy" else group_size  # the reference run coded K = 128
        scheme = CodingScheme(kind, coded_ratio=ratio, lambda_enc=lam, lambda_dec=lam, lambda_units=units)
        decoded = RandomizedCodedClassifier(classify, scheme, size, generator=seed)(images).float()
        error = float(torch.linalg.vector_norm(decoded - direct) / torch.linalg.vector_norm(direct))
        accuracy = float((decoded.argmax(1) == labels).float().mean())
        rows.append(FidelityRow(kind, ratio, lam, units, size, error, accuracy, direct_accuracy))
    return rows


def format_fidelity(rows: list[FidelityRow]) -> str:
    head = ["family", "N/K", "lambda (units)", "K", "logits rel. error", "RCI accuracy", "direct accuracy"]
    lines = []
    for r in rows:
        lam = "-" if r.kind == "berrut" else f"{r.lambda_:g} ({r.lambda_units})"
        scores = [
            f"{r.relative_error:.4f}",
            f"{r.decoded_accuracy:.4f}",
            f"{r.direct_accuracy:.4f}",
            f"{100 * r.gap:+.1f}",
        ]
        lines.append([r.kind, f"{r.coded_ratio:g}", lam, str(r.group_size), *scores])
    return markdown_table([*head, "gap, points"], lines)
