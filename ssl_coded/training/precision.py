"""The training precision a recipe gets on this machine.

bf16 autocast is fast where the CPU multiplies bf16 quickly and slower than fp32 where it does not
(emulated, or native but slow); a CPU flag does not tell which, so `ssl_coded.search.calibration` times a
few small bf16 and fp32 products once per machine and torch version (cached; `SSL_CODED_BF16=0|1`
overrides it). Where bf16 does not win, `bf16-mixed` is trained as `32-true` instead: `pretrain`
prints FALLBACK_WARNING once the run has started, and the run's config.yaml records the precision
that was used. `benchmarks/bench_precision.py` measures a whole training step in both.

Example:
    >>> training_precision("bf16-mixed", "cpu")  # "32-true" on a CPU whose bf16 products are slow
"""

from __future__ import annotations

from ssl_coded.search import calibration

FALLBACK_WARNING = (
    "ssl-coded: warning: bf16 products are not faster than fp32 on this CPU (measured once, see "
    "ssl_coded.search.calibration), so bf16 autocast would slow training down; training with trainer.precision=32-true "
    "instead (SSL_CODED_BF16=1 keeps bf16)"
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
    """The precision a run trains in: the recipe's, except bf16 autocast on a CPU whose bf16 is not faster.

    Only autocast is changed: fp32 computes what bf16 autocast approximates, and faster on such a CPU.
    `bf16-true` (bf16 weights, an explicit memory choice) is kept as asked.

    Args:
        precision: the recipe's `trainer.precision`.
        accelerator: the recipe's `trainer.accelerator`.

    Returns:
        "32-true" where `precision` means bf16 autocast on this CPU and bf16 does not pay off here
        (`ssl_coded.search.calibration.bf16_training()`); otherwise `precision` unchanged.
    """
    if str(precision) in BF16_AUTOCAST_ON_CPU and trains_on_cpu(accelerator) and not calibration.bf16_training():
        return "32-true"
    return precision
