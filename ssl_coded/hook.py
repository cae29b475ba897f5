"""Attach coded-smoothing to any submodule of an existing model, without editing the model.

Example:
    >>> CodedSmoothingHook.suggest(model, x0)[:2]  # which submodules take and return a batch
    [SubmoduleCandidate(name='', ...), SubmoduleCandidate(name='backbone', ...)]
    >>> hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.1), submodule="projection_head")
    >>> z0, z1 = model(x0), model(x1)  # each training forward also runs the coded branch
    >>> loss = criterion(z0, z1) + hook.pop_penalty()
"""

from __future__ import annotations

import contextlib
import difflib
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, NamedTuple

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


class SubmoduleCandidate(NamedTuple):
    """A submodule that coded-smoothing can hook: in the example forward it took a batch tensor as its
    first argument (and no other tensor with the batch's rows) and returned a tensor with the batch's rows.

    Example:
        >>> print(CodedSmoothingHook.suggest(model, torch.rand(6, 3, 32, 32))[-1])
        projection_head  SimCLRProjectionHead  (6, 512) -> (6, 128)
    """

    name: str
    """Dotted name to pass as `submodule` ("" is the model itself)."""
    type: str
    """Class name of the submodule."""
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.name or '(the model)'}  {self.type}  {self.input_shape} -> {self.output_shape}"


def _batch_aligned_extras(args: tuple[Any, ...], kwargs: dict[str, Any], k: int) -> list[str]:
    """Names of the arguments beside the first that carry the batch's k rows (a mask, indices)."""
    extras = {f"argument {i}": a for i, a in enumerate(args[1:], 1)} | kwargs
    return [name for name, a in extras.items() if isinstance(a, torch.Tensor) and a.dim() and a.shape[0] == k]


def _takes_and_returns_batch(args: tuple[Any, ...], kwargs: dict[str, Any], output: Any, k: int) -> bool:
    if not args or not isinstance(args[0], torch.Tensor) or not args[0].dim() or args[0].shape[0] != k:
        return False
    if not isinstance(output, torch.Tensor) or not output.dim() or output.shape[0] != k:
        return False
    return k < 2 or not _batch_aligned_extras(args, kwargs, k)


def _nearest_names(model: nn.Module, wanted: str, limit: int = 10) -> tuple[list[str], int]:
    """Up to `limit` existing submodule names near `wanted`, and how many names exist in all.

    First the names that end like `wanted` ("blocks" finds "backbone.vit.blocks"), then the closest
    spellings, then the children of the longest prefix of `wanted` that exists (where the path went wrong),
    then the shallowest names.
    """
    names = [name for name, _ in model.named_modules() if name]
    last = wanted.rsplit(".", 1)[-1]
    # a name's end is telling ("blocks"), an index ("7") is not
    same_end = [] if last.isdigit() else [name for name in names if name == last or name.endswith("." + last)]
    close = difflib.get_close_matches(wanted, names, n=limit, cutoff=0.6)
    parts, existing = wanted.split("."), set(names)
    parent = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1) if ".".join(parts[:i]) in existing), "")
    children = [f"{parent}.{child}" if parent else child for child, _ in model.get_submodule(parent).named_children()]
    shallow = sorted(names, key=lambda name: name.count("."))  # then the top-level names, to fill the list
    return list(dict.fromkeys(same_end + close[:3] + children + close[3:] + shallow))[:limit], len(names)


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
        calls: which training forwards of a step are coded, by their index since the last `pop_penalty`
            (0 is the first): `range(2)` codes the global crops of a multi-crop loop that runs them
            first. None: every one (up to `max_passes_per_step`). Whatever the order, forwards inside
            `with hook.paused():` are never coded and not counted.

    A copy of the model made with copy.deepcopy after the hook (an EMA teacher, torch's AveragedModel)
    does not carry the coded branch: only the model the hook was attached to is coded.
    The hooked submodule's first positional argument is coded; other arguments pass unchanged.
    Works with DDP (one process per device); not with nn.DataParallel (replicas in threads) nor
    inside reentrant activation checkpointing (its forward runs under no_grad and is replayed in
    backward); non-reentrant checkpointing and torch.compile are fine.

    Attach the hook before compiling: a model compiled and run before the hook was attached keeps
    running its graph without it (Dynamo does not guard on hooks); `pop_penalty` then warns.
    `CodedSmoothingHook.suggest(model, batch)` lists the submodules the hook can take.

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
        calls: Iterable[int] | None = None,
    ) -> None:
        try:
            self.module = model.get_submodule(submodule or "")
        except AttributeError:
            near, total = _nearest_names(model, submodule or "")
            more = f" (of {total})" if total > len(near) else ""
            raise ValueError(
                f"no submodule {submodule!r} in {type(model).__name__}; nearest names{more}: "
                f"{', '.join(map(repr, near)) or 'none'}; CodedSmoothingHook.suggest(model, batch) lists "
                "the ones that take a batch"
            ) from None
        if max_passes_per_step is not None and max_passes_per_step < 1:
            raise ValueError(f"max_passes_per_step must be >= 1 or None, got {max_passes_per_step}")
        self.calls = None if calls is None else frozenset(calls)
        if self.calls is not None and (not self.calls or any(not isinstance(i, int) or i < 0 for i in self.calls)):
            raise ValueError(f"calls must name forwards by index from 0 (e.g. range(2)), got {sorted(self.calls)}")
        self.regularizer = regularizer
        self.submodule = submodule or ""
        self.max_passes_per_step = max_passes_per_step
        self._idle_steps = 0  # pop_penalty calls in training mode that found no coded pass
        self._forward_seen = False  # whether the hooked module's forward ran at all
        self.penalties: list[torch.Tensor] = []
        self.passes = 0  # coded passes run since the hook was attached
        self._labels: torch.Tensor | None = None  # set by `scored_against`
        self._versions: tuple[int, ...] | None = None  # the hooked parameters' versions at the first waiting penalty
        self._popped_without_forward = False  # pop_penalty returned a penalty and no forward ran since
        self.last_penalty: torch.Tensor | None = None  # what the last pop_penalty returned (detached): for logging
        self._step_calls = 0  # training forwards since the last pop_penalty, outside `paused` blocks
        self._paused = False
        self._handle = self.module.register_forward_hook(self._on_forward, with_kwargs=True)

    _detached = False  # True on the copy a deepcopy of the hooked model makes (`__deepcopy__`)

    def _on_forward(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        if self._detached:
            return
        self._forward_seen = True
        self._popped_without_forward = False
        if not module.training or not torch.is_grad_enabled() or in_coded_pass() or self.regularizer.weight == 0:
            return
        if self._paused:
            return
        index, self._step_calls = self._step_calls, self._step_calls + 1
        if self.calls is not None and index not in self.calls:
            return
        if self.max_passes_per_step is not None and len(self.penalties) >= self.max_passes_per_step:
            return
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(output, torch.Tensor):
            raise TypeError(
                f"coded-smoothing needs a submodule that takes a batch tensor as first argument and "
                f"returns a tensor; {type(module).__name__} does not; hook a submodule that does"
            )
        if not args[0].requires_grad and not any(p.requires_grad for p in module.parameters()):
            warn_once(  # no gradient can flow: the penalty would train nothing
                f"coded-smoothing: the hooked submodule {self.submodule!r} ({type(module).__name__}) has no trainable "
                "parameters and its input needs no gradient, so its penalty would train nothing and is skipped; hook a "
                "trained submodule (DINO: the student's head, never the teacher's)"
            )
            return
        self._refuse_batch_aligned_extras(module, args, kwargs)

        def coded_fn(coded: torch.Tensor) -> torch.Tensor:
            with _CodedPass():
                result: torch.Tensor = module(coded, *args[1:], **kwargs)
                return result

        if not self.penalties and not torch.compiler.is_compiling():
            self._versions = self._parameter_versions()
        freeze = frozen_batchnorm_stats(module) if self.regularizer.freeze_bn_stats else contextlib.nullcontext()
        with freeze:
            target = output if self._labels is None else self._labels
            self.penalties.append(self.regularizer(coded_fn, args[0], target=target))
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
        aligned = _batch_aligned_extras(args, kwargs, k)
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
                # a compiled graph traced before the hook existed skips it as if the forward never ran
                compiled = " or compile the model after attaching the hook" if "torch._dynamo" in sys.modules else ""
                warn_once(
                    f"coded-smoothing: the forward of the hooked submodule {self.submodule!r} "
                    f"({type(self.module).__name__}) has not run in 3 training steps, so the penalty is 0; "
                    "hook a submodule whose forward runs (lightly's MAE calls backbone.encode(), not backbone())"
                    f"{compiled}"
                )
        self._step_calls = 0
        if not self.penalties:
            if self._popped_without_forward and self.module.training and self.regularizer.weight != 0:
                warn_once(
                    "coded-smoothing: pop_penalty() was called again before another forward, so it returns 0 and "
                    "the second caller's loss has no penalty; read hook.last_penalty for logging and pop once a step"
                )
            parameter = next(self.module.parameters(), None)
            return torch.zeros((), device=parameter.device if parameter is not None else None)
        if self._versions is not None and self._parameter_versions() != self._versions:
            self.penalties.clear()
            raise RuntimeError(
                "coded-smoothing: these penalties were computed before the last optimizer step (their graph is "
                "gone): call hook.pop_penalty() after the step's forwards and add it to that step's loss, not "
                "before the forwards"
            )
        penalty = torch.stack(self.penalties).mean()
        self.penalties.clear()
        self._versions = None  # the next forward records them afresh (not where a compiled graph runs it)
        self.last_penalty = penalty.detach()
        self._popped_without_forward = True
        return penalty

    def regularize(
        self, loss: torch.Tensor, floor: float | torch.Tensor = 0.0, relative_to: str = "loss"
    ) -> torch.Tensor:
        """`loss` plus this step's penalty taken relative to it, its gradient direction kept, so that one
        weight means a comparable strength in every method, whatever the scale of its loss (an NT-Xent near
        5, a Barlow Twins loss in the thousands):

        - `relative_to="loss"`: the penalty is scaled to `weight x (loss - floor)`. `floor` is the lowest
          value the loss can take: 0 for most, -1 for a negative cosine similarity (BYOL, SimSiam), whose
          value passes through 0 on its way down, the teacher's entropy for DINO (`ssl_coded.loss_floors`).
          Costs a few scalar operations.
        - `relative_to="gradient"`: the penalty is scaled so that its gradient's norm on the hooked
          submodule's trainable parameters is `weight x` the loss's (`floor` is not used): the same strength
          where it acts, in every loop, by construction. Costs two more backward passes through the graph
          between the losses and those parameters (small for a projection head, a whole backward for a hook
          at the input). Under DDP each rank scales by its own gradients; under fp16 autocast with a
          GradScaler the two extra passes run unscaled (bf16 has fp32's range).

        Pops the penalties as `pop_penalty` does (`last_penalty` keeps the absolute one); a step without one
        adds nothing.

        Example:
            >>> loss = hook.regularize(criterion(model(x0), model(x1)))
            >>> loss = hook.regularize(criterion(model(x0), model(x1)), relative_to="gradient")
        """
        if relative_to not in ("loss", "gradient"):
            raise ValueError(f"relative_to={relative_to!r} is not 'loss' or 'gradient'")
        penalty = self.pop_penalty()
        if relative_to == "gradient":
            return loss + penalty * self._gradient_factor(loss, penalty)
        size = penalty.detach()
        scale = self.regularizer.weight * (loss.detach() - floor).abs()
        # no host sync: where there is no penalty the factor is 0, and so is what is added
        factor = torch.where(size != 0, scale / size.clamp_min(1e-30), 0.0)
        return loss + penalty * factor

    def _gradient_factor(self, loss: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
        """weight x |grad loss| / |grad penalty| on the hooked trainable parameters (0 where either is absent)."""
        parameters = [p for p in self.module.parameters() if p.requires_grad]
        if not penalty.requires_grad or not loss.requires_grad:
            return torch.zeros((), device=penalty.device)
        if not parameters:  # the penalty trains what feeds a frozen submodule: no gradient here to compare
            raise ValueError(
                f"coded-smoothing: relative_to='gradient' compares gradients on the hooked submodule's trainable "
                f"parameters, and {self.submodule!r} has none; hook a trainable submodule or use relative_to='loss'"
            )

        def norm(value: torch.Tensor) -> torch.Tensor:
            grads = torch.autograd.grad(value, parameters, retain_graph=True, allow_unused=True)
            squares = [g.float().pow(2).sum() for g in grads if g is not None]
            return torch.stack(squares).sum().sqrt() if squares else torch.zeros((), device=value.device)

        of_loss, of_penalty = norm(loss), norm(penalty)
        return torch.where(of_penalty > 0, self.regularizer.weight * of_loss / of_penalty.clamp_min(1e-30), 0.0)

    def _parameter_versions(self) -> tuple[int, ...]:
        """In-place versions of the hooked submodule's trainable parameters: an optimizer step moves them."""
        return tuple(p._version for p in self.module.parameters() if p.requires_grad)

    def __deepcopy__(self, memo: dict[int, Any]) -> CodedSmoothingHook:
        """A deepcopy of a hooked model (an EMA teacher, `AveragedModel`) copies its forward hooks, and with
        them this object: the copy is detached, so the copied model never runs a coded branch nor holds
        penalties that nobody pops."""
        detached: CodedSmoothingHook = object.__new__(CodedSmoothingHook)
        detached._detached = True
        return detached

    @staticmethod
    def suggest(model: nn.Module, example_input: Any) -> list[SubmoduleCandidate]:
        """The submodules coded-smoothing can hook, in the order their forwards start.

        Runs one forward of `example_input` under no_grad, in the model's current mode, with a
        temporary hook on every submodule, and keeps those whose first argument was a tensor with the
        batch's rows (dim 0), with no other such tensor beside it, and whose output was one too:
        the coded pass replaces the batch by coded samples, so it needs a submodule that maps a
        batch to a batch. Batch-norm running statistics are left unchanged. A module called several
        times is listed at its first call; one that never ran (lightly's MAE calls `backbone.encode()`,
        so `backbone` itself is not listed, its blocks are) is not listed.

        Args:
            model: the model, as the training loop calls it.
            example_input: a batch (a tensor), or a tuple of the model's positional arguments
                whose first tensor is the batch. Use a batch size that no other dimension has.

        Returns:
            One `SubmoduleCandidate` (name, type, input and output shape) per hookable submodule;
            the model itself is named "".

        Example:
            >>> for candidate in CodedSmoothingHook.suggest(model, torch.rand(6, 3, 32, 32)):
            ...     print(candidate)
            (the model)  SimCLR  (6, 3, 32, 32) -> (6, 128)
            backbone  Sequential  (6, 3, 32, 32) -> (6, 512, 1, 1)
        """
        args = example_input if isinstance(example_input, tuple) else (example_input,)
        batch = next((a for a in args if isinstance(a, torch.Tensor) and a.dim()), None)
        if batch is None:
            raise TypeError(
                "suggest needs an example batch: a tensor, or a tuple of the model's arguments with one, "
                f"got {type(example_input).__name__}"
            )
        k = batch.shape[0]
        names = {id(module): name for name, module in model.named_modules()}
        started: dict[int, int] = {}  # id of a module -> rank of its first forward
        found: dict[int, SubmoduleCandidate] = {}

        def on_start(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            started.setdefault(id(module), len(started))

        def on_end(module: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            if id(module) not in found and _takes_and_returns_batch(inputs, kwargs, output, k):
                shape_in, shape_out = tuple(inputs[0].shape), tuple(output.shape)
                found[id(module)] = SubmoduleCandidate(names[id(module)], type(module).__name__, shape_in, shape_out)

        handles = []
        try:
            for module in model.modules():
                handles.append(module.register_forward_pre_hook(on_start))
                handles.append(module.register_forward_hook(on_end, with_kwargs=True))
            with torch.no_grad(), frozen_batchnorm_stats(model):
                model(*args)
        finally:
            for handle in handles:
                handle.remove()
        return [found[key] for key in sorted(found, key=started.__getitem__)]

    @contextlib.contextmanager
    def scored_against(self, labels: torch.Tensor | None) -> Iterator[None]:
        """Within the block, score the decoded outputs against `labels` instead of the real outputs: a
        classifier's integer labels with `score="cross_entropy"` (the paper's supervised reading). None
        leaves the real outputs as the target.

        Example:
            >>> hook = CodedSmoothingHook(classifier, CodedSmoothing(weight=0.5, score="cross_entropy"))
            >>> with hook.scored_against(labels):
            ...     logits = classifier(x)
            >>> loss = F.cross_entropy(logits, labels) + hook.pop_penalty()
        """
        previous, self._labels = self._labels, labels
        try:
            yield
        finally:
            self._labels = previous

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Within the block, forwards through the hooked submodule are not coded (nor counted by `calls`):
        the local crops of a multi-crop loop, whatever order it runs them in.

        Example:
            >>> student_out = [student(view) for view in global_views]  # coded
            >>> with hook.paused():
            ...     student_out += [student(view) for view in local_views]  # not coded
            >>> loss = hook.regularize(criterion(teacher_out, student_out))
        """
        previous, self._paused = self._paused, True
        try:
            yield
        finally:
            self._paused = previous

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


def attach_coded_smoothing(
    module: nn.Module,
    submodule: str = "",
    weight: float = 1.0,
    max_passes_per_step: int | None = None,
    calls: Iterable[int] | None = None,
    **regularizer_kwargs: Any,
) -> CodedSmoothingHook:
    """Build a `CodedSmoothing(weight, **regularizer_kwargs)` and hook it on `module`'s `submodule`.

    One call for a LightningModule's `__init__` (or `configure_model`), after any momentum copy is
    made; `training_step` then adds `hook.pop_penalty()` to its loss. Validation runs in eval mode
    under no_grad, so it never fires there.

    Args:
        module: the model (a LightningModule, a solo-learn method, any nn.Module).
        submodule: dotted name of the submodule to smooth ("": the whole module).
        weight: the penalty's factor, mu.
        max_passes_per_step, calls: see `CodedSmoothingHook`.
        **regularizer_kwargs: the other arguments of `CodedSmoothing` (kind, coded_ratio, score, ...).

    Returns:
        The attached hook.

    Example:
        >>> class SimCLR(pl.LightningModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.backbone, self.projection_head = backbone, SimCLRProjectionHead(512, 512, 128)
        ...         self.coded = attach_coded_smoothing(self, "projection_head", weight=0.5)
        ...
        ...     def training_step(self, batch, batch_idx):
        ...         (x0, x1), _ = batch
        ...         return self.criterion(self(x0), self(x1)) + self.coded.pop_penalty()
    """
    regularizer = CodedSmoothing(weight=weight, **regularizer_kwargs)
    return CodedSmoothingHook(module, regularizer, submodule, max_passes_per_step=max_passes_per_step, calls=calls)
