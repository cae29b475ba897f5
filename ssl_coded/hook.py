"""Attach coded-smoothing to any submodule of an existing model, without editing the model.

Example:
    >>> hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.1), submodule="projection_head")
    >>> z0, z1 = model(x0), model(x1)  # each training forward also runs the coded branch
    >>> loss = criterion(z0, z1) + hook.pop_penalty()
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from types import TracebackType
from typing import Any

import torch
from torch import nn

from ssl_coded.notices import warn_once
from ssl_coded.regularizer import CodedSmoothing, frozen_batchnorm_stats

_state = threading.local()


def in_coded_pass() -> bool:
    """True while a coded pass runs: hooks never fire on coded samples, theirs or another's."""
    return getattr(_state, "depth", 0) > 0


class _CodedPass:
    def __enter__(self) -> None:
        _state.depth = getattr(_state, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        _state.depth -= 1


class CodedSmoothingHook:
    """Adds a coded branch to a submodule: every training forward through it also runs the
    coded pass on its input and stores the penalty, which the loop adds to its loss.

    The branch fires only when the submodule is in training mode and gradients are enabled
    (a penalty without gradient regularises nothing, so momentum/target networks run under
    no_grad are left alone). The coded forward never triggers hooks itself. The real output
    of the forward is the target, so no extra forward over the batch is spent.

    Args:
        model: the model, or directly the submodule to smooth.
        regularizer: the CodedSmoothing module that scores the coded branch.
        submodule: dotted name of the submodule inside `model` ("" or None: model itself).
        max_passes_per_step: fire at most this many times between two `pop_penalty` calls
            (e.g. 1 for a two-view method that only codes the first view); None: every forward.

    Attach a hook after making momentum copies of the model (copy.deepcopy copies hooks).
    The hooked submodule's first positional argument is coded; other arguments pass unchanged.
    Works with DDP (one process per device); not with nn.DataParallel (replicas in threads) nor
    inside reentrant activation checkpointing (its forward runs under no_grad and is replayed in
    backward); non-reentrant checkpointing and torch.compile are fine.

    Example:
        >>> with CodedSmoothingHook(model, CodedSmoothing(weight=0.1), submodule="head") as hook:
        ...     loss = criterion(model(x0), model(x1)) + hook.pop_penalty()
    """

    def __init__(
        self,
        model: nn.Module,
        regularizer: CodedSmoothing,
        submodule: str | None = None,
        max_passes_per_step: int | None = None,
    ) -> None:
        try:
            self.module = model.get_submodule(submodule or "")
        except AttributeError as error:
            names = [name for name, _ in model.named_modules() if name]
            raise ValueError(f"no submodule {submodule!r} in the model; valid names: {names}") from error
        if max_passes_per_step is not None and max_passes_per_step < 1:
            raise ValueError(f"max_passes_per_step must be >= 1 or None, got {max_passes_per_step}")
        self.regularizer = regularizer
        self.submodule = submodule or ""
        self.max_passes_per_step = max_passes_per_step
        self._idle_steps = 0  # pop_penalty calls in training mode that found no coded pass
        self._forward_seen = False  # whether the hooked module's forward ran at all
        self.penalties: list[torch.Tensor] = []
        self.passes = 0  # coded passes run since the hook was attached
        self._handle = self.module.register_forward_hook(self._on_forward, with_kwargs=True)

    def _on_forward(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        self._forward_seen = True
        if not module.training or not torch.is_grad_enabled() or in_coded_pass() or self.regularizer.weight == 0:
            return
        if self.max_passes_per_step is not None and len(self.penalties) >= self.max_passes_per_step:
            return
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(output, torch.Tensor):
            raise TypeError(
                f"coded-smoothing needs a submodule that takes a batch tensor as first argument and "
                f"returns a tensor; {type(module).__name__} does not; hook a submodule that does"
            )
        if not args[0].requires_grad and not any(p.requires_grad for p in module.parameters()):
            return  # no gradient can flow (e.g. a momentum copy made with copy.deepcopy): nothing to train
        self._refuse_batch_aligned_extras(module, args, kwargs)

        def coded_fn(coded: torch.Tensor) -> torch.Tensor:
            with _CodedPass():
                result: torch.Tensor = module(coded, *args[1:], **kwargs)
                return result

        freeze = frozen_batchnorm_stats(module) if self.regularizer.freeze_bn_stats else contextlib.nullcontext()
        with freeze:
            self.penalties.append(self.regularizer(coded_fn, args[0], target=output))
        if len(self.penalties) == 64:
            warnings.warn(
                "64 coded-smoothing penalties are waiting, each holding its graph: call "
                "hook.pop_penalty() once per step and add it to the loss",
                stacklevel=2,
            )
        self.passes += 1

    def _refuse_batch_aligned_extras(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Other tensors with the batch's K rows (a mask, indices) would reach the N coded rows unchanged."""
        k = args[0].shape[0]
        extras = {f"argument {i}": a for i, a in enumerate(args[1:], 1)} | kwargs
        aligned = [name for name, a in extras.items() if isinstance(a, torch.Tensor) and a.dim() and a.shape[0] == k]
        if aligned and k > 1:
            raise ValueError(
                f"coded-smoothing: {type(module).__name__} at {self.submodule!r} takes {', '.join(aligned)} with the "
                f"batch's {k} rows beside the batch; the coded pass has other rows, so hook a submodule whose "
                "forward takes the batch alone (e.g. the transformer blocks, not the decoder that takes indices)"
            )

    def pop_penalty(self) -> torch.Tensor:
        """Mean of the penalties collected since the last call (0 if none), and clear them.

        The mean, not the sum, so that `weight` means the same whether the loop runs the views
        through the model one by one or concatenated.
        """
        if not self.penalties and self.module.training and self.regularizer.weight != 0 and not self._forward_seen:
            self._idle_steps += 1
            if self._idle_steps == 3:
                warn_once(
                    f"coded-smoothing: the forward of the hooked submodule {self.submodule!r} "
                    f"({type(self.module).__name__}) has not run in 3 training steps, so the penalty is 0; "
                    "hook a submodule whose forward runs (lightly's MAE calls backbone.encode(), not backbone())"
                )
        if not self.penalties:
            parameter = next(self.module.parameters(), None)
            return torch.zeros((), device=parameter.device if parameter is not None else None)
        penalty = torch.stack(self.penalties).mean()
        self.penalties.clear()
        return penalty

    def remove(self) -> None:
        """Detach the branch: the model is exactly as before the hook was attached."""
        self._handle.remove()
        self.penalties.clear()

    def __enter__(self) -> CodedSmoothingHook:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()
