"""What this machine's CPU reports about bf16: a flag, not a speed.

`native_bf16()` says whether oneDNN finds bf16 instructions (AVX512-BF16, AMX); it does not say
whether bf16 products are faster than fp32 ones, which is what the kNN search and the training
precision need: `ssl_coded.search.calibration` measures that. The flag is printed by the benchmarks beside
the measurement.

Example:
    >>> native_bf16()  # False on a CPU without AVX512-BF16 or AMX: bf16 products are emulated there
"""

from __future__ import annotations

import torch


def native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (it may still multiply bf16 slower than fp32: see calibration)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
