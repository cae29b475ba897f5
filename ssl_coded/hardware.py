"""What this machine's CPU does natively.

Example:
    >>> native_bf16()  # False on a CPU without AVX512-BF16 or AMX: bf16 products are emulated there
"""

from __future__ import annotations

import torch


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively; where it does not, bf16 is emulated and slower than fp32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
