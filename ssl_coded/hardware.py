"""What this machine's CPU does natively, and the training precision a recipe gets on it.

The Fashion-MNIST recipes train under bf16 autocast, which is fast where the CPU multiplies bf16
natively (AVX512-BF16, AMX) and emulated, several times slower than fp32, where it does not: one
512-image step of the small CNN took 12.75 s in bf16 against 1.48 s in fp32 on an AVX2-only EPYC
(`python -m ssl_coded.eval.bench_precision`).
On such a CPU `bf16-mixed` is trained as `32-true` instead (`pretrain` prints FALLBACK_WARNING once the
run has started, and the run's config.yaml records the precision that was used).

Example:
    >>> training_precision("bf16-mixed", "cpu")  # "32-true" on a CPU without native bf16
"""

from __future__ import annotations

import torch

FALLBACK_WARNING = (
    "ssl-coded: warning: this CPU has no native bf16, so bf16 autocast would be emulated (several times slower "
    "than fp32); training with trainer.precision=32-true instead"
)


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively; where it does not, bf16 is emulated and slower than fp32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def trains_on_cpu(accelerator: str) -> bool:
    """Whether Lightning's `accelerator` setting puts training on the CPU of this machine."""
    if accelerator == "auto":
        return not (torch.cuda.is_available() or torch.backends.mps.is_available())
    return accelerator == "cpu"


def training_precision(precision: str, accelerator: str) -> str:
    """The recipe's precision, except `bf16-mixed` on a CPU without native bf16, which becomes `32-true`.

    Only the autocast setting is changed: fp32 computes what bf16 autocast approximates, faster on such
    a CPU. `bf16-true` (bf16 weights, an explicit memory choice) is kept as asked.
    """
    if precision == "bf16-mixed" and trains_on_cpu(accelerator) and not native_bf16():
        return "32-true"
    return precision
