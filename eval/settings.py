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
        knn_ks, knn_temperatures: the grid of the kNN sweep (`knn-sweep`).
        fewshot_fractions, fewshot_draws: the labelled fractions of train and the draws of each (`fewshot`).
        sgd_lrs: the SGD probe's learning rates, one chosen on validation (`--probe sgd`, `probe-images`).
        finetune_lrs: fine-tuning's learning rates (`finetune`).
        image_epochs, image_augment: epochs and augmentation ("crop", "crop-flip", "none") of the protocols
            that train on images (`finetune`, `probe-images`).
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
    knn_ks: tuple[int, ...] = (10, 20, 100, 200)
    knn_temperatures: tuple[float, ...] = (0.02, 0.05, 0.07, 0.1, 0.2)
    fewshot_fractions: tuple[float, ...] = (0.01, 0.1)
    fewshot_draws: int = 5
    sgd_lrs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    finetune_lrs: tuple[float, ...] = (0.001, 0.01, 0.1)
    image_epochs: int = 5
    image_augment: str = "crop"

    def __post_init__(self) -> None:
        from ssl_coded.eval.protocols import IMAGE_PROTOCOLS, PROTOCOLS

        object.__setattr__(self, "protocols", tuple(self.protocols))
        if unknown := sorted(set(self.protocols) - set(PROTOCOLS) - set(IMAGE_PROTOCOLS)):
            raise ValueError(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS | IMAGE_PROTOCOLS)}")
        if self.index_kind not in INDEXES:
            raise ValueError(f"index {self.index_kind!r} is not one of {', '.join(INDEXES)}")
        if self.probe not in PROBES:
            raise ValueError(f"probe {self.probe!r} is not one of {', '.join(PROBES)}")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError("--batch-size must be >= 1 and --workers >= 0")
        for name in ("knn_ks", "knn_temperatures", "fewshot_fractions", "sgd_lrs", "finetune_lrs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.knn_ks or min(self.knn_ks) < 1 or not self.knn_temperatures or min(self.knn_temperatures) <= 0:
            raise ValueError("the kNN sweep needs --knn-k values >= 1 and --knn-t values > 0")
        if not self.fewshot_fractions or not all(0 < f <= 1 for f in self.fewshot_fractions):
            raise ValueError("--fewshot takes fractions of the labels in (0, 1], e.g. 0.01,0.1")
        if self.fewshot_draws < 1:
            raise ValueError("--draws must be >= 1")
        if not self.sgd_lrs or min(self.sgd_lrs) <= 0:
            raise ValueError("--sgd-lr takes learning rates > 0, e.g. 0.01,0.1,1")
        if not self.finetune_lrs or min(self.finetune_lrs) <= 0:
            raise ValueError("--finetune-lr takes learning rates > 0, e.g. 0.001,0.01,0.1")
        if self.image_epochs < 1:
            raise ValueError("--epochs must be >= 1")
        if self.image_augment not in ("crop", "crop-flip", "none"):
            raise ValueError(f"--augment {self.image_augment!r} is not one of crop, crop-flip, none")

    def recorded(self, protocol: str | None = None) -> dict[str, Any]:
        """The settings that change a protocol's numbers, as results.json records them beside it."""
        extra: dict[str, Any] = {}
        if protocol == "knn-sweep":
            extra = {"ks": list(self.knn_ks), "temperatures": list(self.knn_temperatures)}
        elif protocol == "fewshot":
            extra = {"fractions": list(self.fewshot_fractions), "draws": self.fewshot_draws}
        elif protocol == "linear" and self.probe == "sgd":
            extra = {"lrs": list(self.sgd_lrs)}
        elif protocol in ("finetune", "probe-images"):
            lrs = self.finetune_lrs if protocol == "finetune" else self.sgd_lrs
            extra = {"lrs": list(lrs), "epochs": self.image_epochs, "augment": self.image_augment}
        return {"index": self.index_kind, "probe": self.probe, **extra}
