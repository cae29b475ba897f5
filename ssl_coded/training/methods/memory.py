"""Queues of earlier embeddings (lightly's `MemoryBankModule`: MoCo's keys, SwAV's projections) in
checkpoints. lightly keeps them out of the state_dict; saved beside it, a resume continues a queue instead
of starting a random one."""

from __future__ import annotations

from torch import Tensor, nn


def bank_state(bank: nn.Module) -> dict[str, Tensor]:
    """The queue's contents and write position, on the CPU."""
    return {name: getattr(bank, name).detach().cpu() for name in ("bank", "bank_ptr")}


def restore_bank(bank: nn.Module, state: dict[str, Tensor]) -> None:
    """Put a `bank_state` back (nothing where a checkpoint has none: it started before the queue existed)."""
    for name, value in state.items():
        getattr(bank, name).copy_(value)
