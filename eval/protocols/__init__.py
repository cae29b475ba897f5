"""The evaluation protocols, on a registry: a name -> the module and function that runs it, imported
when it runs. A protocol takes the frozen features of each split and returns metrics for one row of
results.json; `ssl_coded.eval.report` extracts (and caches) the features once and runs every protocol
asked for on them, for the encoder and each floor.

A new protocol is one file here with `run(features, task) -> Outcome` and a line in `PROTOCOLS`
(CONTRIBUTING.md, "Add an evaluation protocol"). The functions the protocols are built from take
features you already have: `knn`, `retrieval`, `knn_report`, `knn_sweep`, `fewshot_draws` and `linear_probe`.

Example:
    >>> knn(train_x, train_y, test_x, test_y)["knn_dino_top1"]
    >>> retrieval(train_x, train_y, test_x, test_y)["map@r"]
    >>> linear_probe(train_x, train_y, val_x, val_y, test_x, test_y).test_top1
    >>> get_protocol("knn")({"train": (x, y), "test": (qx, qy)}, Task(num_classes=10)).row
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ssl_coded.eval.linear_probe import ProbeResult, linear_probe
from ssl_coded.eval.protocols.base import Outcome, Protocol, SplitFeatures, Task
from ssl_coded.eval.protocols.fewshot import fewshot_draws
from ssl_coded.eval.protocols.knn_retrieval import knn, knn_report, retrieval
from ssl_coded.eval.protocols.knn_sweep import SweepResult, knn_sweep

PROTOCOLS: dict[str, str] = {
    "knn": "knn_retrieval:run",  # weighted kNN (dino and instdisc presets) and retrieval
    "linear": "probe:run",  # the linear probe, C chosen on validation (or SGD)
    "knn-sweep": "knn_sweep:run",  # kNN with k and T chosen on validation
    "fewshot": "fewshot:run",  # probe and kNN on 1% and 10% of the labels, several draws
}
# protocols that train on images through the encoder (not on cached features): run(encoder, splits, task)
IMAGE_PROTOCOLS: dict[str, str] = {
    "probe-images": "probe_images:run_images",  # DINOv2's linear evaluation: heads on augmented images, lr grid
    "finetune": "finetune:run_images",  # the whole encoder and a linear head, lr chosen on validation
}
ANCHORS = ("knn", "linear")  # what runs unless others are named (`ssl-coded eval all`)


def get_protocol(name: str) -> Callable[..., Outcome]:
    """The protocol registered as `name` (an image protocol takes the encoder and datasets, not features)."""
    registry = PROTOCOLS | IMAGE_PROTOCOLS
    if name not in registry:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(registry)}")
    module, function = registry[name].split(":")
    protocol: Callable[..., Outcome] = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return protocol


__all__ = [
    "ANCHORS",
    "IMAGE_PROTOCOLS",
    "PROTOCOLS",
    "Outcome",
    "ProbeResult",
    "Protocol",
    "SplitFeatures",
    "SweepResult",
    "Task",
    "fewshot_draws",
    "get_protocol",
    "knn",
    "knn_report",
    "knn_sweep",
    "linear_probe",
    "retrieval",
]
