"""How encoders are evaluated, as one object passed whole from the command line to the protocols.

Example:
    >>> settings = EvalSettings(protocols=("knn",), index_kind="ivf", device="cpu")
    >>> evaluate_sources(sources, splits, num_classes, "out", settings)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INDEXES = ("exact", "flat", "ivf")
PROBES = ("lbfgs", "sgd")


@dataclass(frozen=True)
class EvalSettings:
    """What an evaluation runs and how; results do not depend on the last four fields.

    Args:
        protocols: names on the protocol registry (`ssl_coded.eval.protocols.PROTOCOLS`), run in its order.
        floors: evaluate the random-init and raw-pixel floors beside the encoder.
        index_kind: the kNN search, "exact" (certified), or FAISS's "flat" or "ivf".
        probe: the linear probe, "lbfgs" (C chosen on validation) or "sgd".
        plots: write embedding.png, retrieval.png and confusion.png.
        device: where features are extracted, searched and probed: "auto", "cpu", "cuda" or "cuda:N".
        batch_size, num_workers: of the feature extraction.
        cache_dir: where features are cached (None: `features/` in the output folder).
    """

    protocols: tuple[str, ...] = ("knn", "linear")
    floors: bool = True
    index_kind: str = "exact"
    probe: str = "lbfgs"
    plots: bool = True
    device: str = "auto"
    batch_size: int = 256
    num_workers: int = 0
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        from ssl_coded.eval.protocols import PROTOCOLS

        object.__setattr__(self, "protocols", tuple(self.protocols))
        if unknown := sorted(set(self.protocols) - set(PROTOCOLS)):
            raise ValueError(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS)}")
        if self.index_kind not in INDEXES:
            raise ValueError(f"index {self.index_kind!r} is not one of {', '.join(INDEXES)}")
        if self.probe not in PROBES:
            raise ValueError(f"probe {self.probe!r} is not one of {', '.join(PROBES)}")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError("--batch-size must be >= 1 and --workers >= 0")

    def recorded(self) -> dict[str, Any]:
        """The settings that change a protocol's numbers, as results.json records them beside each protocol."""
        return {"index": self.index_kind, "probe": self.probe}
