"""Framework output the user did not ask for, silenced for the length of one call.

Lightning announces devices, tips and settings on every run; these messages say nothing about the
user's run, so `pretrain` runs inside `quiet_frameworks()` unless `--verbose`. Warnings about the run
itself (the bf16 fallback, a non-finite loss, a hook whose forward never runs) are ours and stay.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

FRAMEWORK_LOGGERS = (
    "lightning.pytorch",
    "pytorch_lightning",
    "lightning.fabric",
    "lightning_fabric",
    "lightning",
    "mlflow",
)
NOISE = (  # framework warnings that are about the framework, not the run
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*is smaller than the logging interval.*",
    r".*does not have many workers.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*self\.trainer.* reference is not registered.*",
    r".*torch\.nn\.utils\.weight_norm.* is deprecated.*",  # lightly's DINO head still builds with it
)


@contextlib.contextmanager
def quiet_frameworks(verbose: bool = False) -> Iterator[None]:
    """Lightning's info messages and framework warnings off inside the block (nothing with `verbose`)."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in FRAMEWORK_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for pattern in NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
