"""The training precision a recipe gets on this machine.

bf16 autocast is fast where the CPU multiplies bf16 natively (AVX512-BF16, AMX) and emulated,
several times slower than fp32, where it does not (`benchmarks/bench_precision.py` measures the gap;
README, "Pretrain from a recipe"). On such a CPU `bf16-mixed` is trained as `32-true` instead:
`pretrain` prints FALLBACK_WARNING once the run has started, and the run's config.yaml records the
precision that was used.

Example:
    >>> training_precision("bf16-mixed", "cpu")  # "32-true" on a CPU without native bf16
"""

from __future__ import annotations

from ssl_coded import hardware

FALLBACK_WARNING = (
    "ssl-coded: warning: this CPU has no native bf16, so bf16 autocast would be emulated (several times slower "
    "than fp32); training with trainer.precision=32-true instead"
)


def trains_on_cpu(accelerator: str) -> bool:
    """Whether Lightning's `accelerator` setting puts training on this machine's CPU.

    Args:
        accelerator: a `trainer.accelerator` value ("auto", "cpu", "gpu", "cuda", "mps", "tpu", ...).

    Returns:
        True for "cpu", and for "auto" where Lightning finds no CUDA, MPS or XLA device (its own checks).
    """
    if accelerator == "auto":
        from pytorch_lightning.accelerators import CUDAAccelerator, MPSAccelerator, XLAAccelerator

        return not any(a.is_available() for a in (CUDAAccelerator, MPSAccelerator, XLAAccelerator))
    return accelerator == "cpu"


# On a CPU Lightning runs every 16-bit mixed setting as bf16 autocast ("16-mixed" becomes "bf16-mixed")
BF16_AUTOCAST_ON_CPU = {"bf16-mixed", "bf16", "16-mixed", "16"}


def training_precision(precision: str, accelerator: str) -> str:
    """The precision a run trains in: the recipe's, except bf16 autocast on a CPU without native bf16.

    Only autocast is changed: fp32 computes what bf16 autocast approximates, and faster on such a CPU.
    `bf16-true` (bf16 weights, an explicit memory choice) is kept as asked.

    Args:
        precision: the recipe's `trainer.precision`.
        accelerator: the recipe's `trainer.accelerator`.

    Returns:
        "32-true" where `precision` means bf16 autocast on this CPU and the CPU has no native bf16;
        otherwise `precision` unchanged.
    """
    if str(precision) in BF16_AUTOCAST_ON_CPU and trains_on_cpu(accelerator) and not hardware.native_bf16():
        return "32-true"
    return precision
