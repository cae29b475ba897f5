"""What every protocol takes and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from ssl_coded.eval.settings import EvalSettings

# split name ("train", "test", optionally "val") -> (features (n, dim), labels (n,))
SplitFeatures = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Task:
    """What a protocol needs beside the features.

    Args:
        num_classes: the number of classes.
        settings: the evaluation's settings (index, probe, ...).
        seed: seeds whatever the protocol draws (carved validation rows, retrieval queries).
        device: where it searches or fits (None: the CPU).
    """

    num_classes: int
    settings: EvalSettings = field(default_factory=EvalSettings)
    seed: int = 0
    device: torch.device | None = None


@dataclass
class Outcome:
    """A protocol's metrics for one row, and what the plots may show of it (a confusion matrix)."""

    row: dict[str, float]
    confusion: list[list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Protocol = Callable[[SplitFeatures, Task], Outcome]
