"""CodedSmoothing: the coded-smoothing penalty as a regularizer module (lightly style).

Example:
    >>> coded = CodedSmoothing(weight=0.5, kind="berrut", coded_ratio=4.0)
    >>> z0, z1 = model(x0), model(x1)
    >>> loss = criterion(z0, z1) + coded(model, x0, target=z0)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ssl_coded.coding import MIN_BATCH, CodingScheme, Kind, LambdaUnits

Score = Literal["mse", "cosine", "cross_entropy"]
SCORES: tuple[str, ...] = ("mse", "cosine", "cross_entropy")
SMALL_BATCH_POLICIES: tuple[str, ...] = ("raise", "skip")

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def frozen_batchnorm_stats(fn: object) -> Iterator[None]:
    """Keep the running statistics of fn's batch-norm layers unchanged inside the block.

    A coded pass runs in training mode, and coded samples are mixtures of the batch: their
    statistics must not leak into the running means and variances used at evaluation time.
    Batch statistics are still used for normalisation inside the block, as in any training step.
    """
    modules = fn.modules() if isinstance(fn, nn.Module) else []
    norms = [m for m in modules if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if tracked is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(tracked)


class CodedSmoothing(nn.Module):
    """Coded-smoothing penalty: weight * score(D @ fn(E @ x), target).

    fn runs on N coded samples (linear combinations of the batch x along its first dimension),
    its outputs are decoded back to the K items, and the decoded outputs are scored against the
    target: fn(x) under stop-gradient by default, embeddings the loop already has, or labels.

    Args:
        weight: mu, the factor on the penalty. Zero returns 0 without running fn.
        kind: "spline" or "berrut" (see `CodingScheme`).
        num_coded: N; if None, N = round(coded_ratio * K).
        coded_ratio: N/K when num_coded is None.
        lambda_enc: encoder smoothing of the spline, in `lambda_units`.
        lambda_dec: decoder smoothing of the spline, in `lambda_units`.
        lambda_units: "spacing" (batch-size independent), "mean" or "scipy".
        score: "mse" (mean squared error), "cosine" (1 - cosine similarity per item, for
            normalised embeddings) or "cross_entropy" (decoded logits against integer labels,
            the supervised reading of the paper).
        detach_target: score against a stop-gradient copy of the target (the usual choice).
        on_small_batch: "raise" (default) a clear error for a batch smaller than 2, or "skip" it:
            the penalty is 0, logged at INFO and counted in `skipped_batches`.
        freeze_bn_stats: if fn is a module, its batch-norm running statistics are not updated by
            the coded pass.
        coded_batch_size: run fn on at most this many coded samples at a time (None: all N at
            once); see `CodingScheme.coded_forward`.
        gather_distributed: under torch.distributed, code the batch gathered across ranks
            (gradients flow back), not each rank's local batch; see
            `CodingScheme.gathered_coded_forward`. Ignored when not distributed.

    Attributes:
        last_fidelity: decoding fidelity of the last call, detached tensors (no device sync):
            "relative_error" = ||decoded - target|| / ||target||, or for cross-entropy
            "decoded_accuracy" = accuracy of the decoded logits.
        skipped_batches: number of batches skipped as too small.

    Example:
        >>> coded = CodedSmoothing(weight=0.1)
        >>> penalty = coded(model.projection_head, embeddings)  # target: head(embeddings)
        >>> loss = ntxent(z0, z1) + penalty
    """

    def __init__(
        self,
        weight: float = 1.0,
        kind: Kind = "spline",
        num_coded: int | None = None,
        coded_ratio: float = 2.0,
        lambda_enc: float = 1e-2,
        lambda_dec: float = 1e-2,
        lambda_units: LambdaUnits = "spacing",
        score: Score = "mse",
        detach_target: bool = True,
        on_small_batch: Literal["raise", "skip"] = "raise",
        freeze_bn_stats: bool = True,
        coded_batch_size: int | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"unknown score {score!r}; choose one of {SCORES}")
        if on_small_batch not in SMALL_BATCH_POLICIES:
            raise ValueError(f"unknown on_small_batch {on_small_batch!r}; choose one of {SMALL_BATCH_POLICIES}")
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.weight = float(weight)
        self.scheme = CodingScheme(kind, num_coded, coded_ratio, lambda_enc, lambda_dec, lambda_units)
        self.score = score
        self.detach_target = detach_target
        self.on_small_batch = on_small_batch
        self.freeze_bn_stats = freeze_bn_stats
        if coded_batch_size is not None and coded_batch_size < 1:
            raise ValueError(f"coded_batch_size must be >= 1 or None, got {coded_batch_size}")
        self.coded_batch_size = coded_batch_size
        self.gather_distributed = gather_distributed
        self.last_fidelity: dict[str, torch.Tensor] = {}
        self.skipped_batches = 0

    def extra_repr(self) -> str:
        return f"weight={self.weight}, score={self.score!r}, scheme={self.scheme}"

    def forward(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The weighted penalty, a scalar tensor.

        Args:
            fn: the network (or the part of it) to smooth; it must map a batch to a batch.
            x: its input batch, shape (K, ...).
            target: what the decoded outputs should match: fn(x)-shaped outputs (default fn(x),
                computed here), or integer labels of shape (K,) for score="cross_entropy".
        """
        zero = x.new_zeros((), dtype=torch.get_default_dtype() if not x.is_floating_point() else x.dtype)
        if self.weight == 0:
            return zero
        if x.shape[0] < MIN_BATCH:
            if self.on_small_batch == "skip":
                self.skipped_batches += 1
                logger.info("coded-smoothing skipped a batch of %d (needs at least %d)", x.shape[0], MIN_BATCH)
                return zero
            raise ValueError(
                f"a batch of {x.shape[0]} is too small to code: coded-smoothing needs at least "
                f"{MIN_BATCH} samples; use a larger batch or on_small_batch='skip'"
            )
        if target is None:
            if self.score == "cross_entropy":
                raise ValueError("score='cross_entropy' needs the labels: pass target=labels")
            with torch.no_grad() if self.detach_target else contextlib.nullcontext():
                target = fn(x)
        if self.detach_target:
            target = target.detach()

        with frozen_batchnorm_stats(fn) if self.freeze_bn_stats else contextlib.nullcontext():
            if self.gather_distributed and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                decoded = self.scheme.gathered_coded_forward(fn, x, self.coded_batch_size)
            else:
                decoded = self.scheme.coded_forward(fn, x, self.coded_batch_size)
        score = self._score(decoded, target)
        self._log_fidelity(decoded, target)
        return self.weight * score

    def _score(self, decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.score == "cross_entropy":
            return F.cross_entropy(decoded, target)
        if decoded.shape != target.shape:
            raise ValueError(
                f"decoded outputs {tuple(decoded.shape)} and target {tuple(target.shape)} differ in "
                "shape; pass the outputs of fn on this batch as target (or none)"
            )
        if self.score == "mse":
            return F.mse_loss(decoded, target.to(decoded.dtype))
        flat, reference = decoded.reshape(len(decoded), -1), target.to(decoded.dtype).reshape(len(target), -1)
        similarity = F.cosine_similarity(flat, reference, dim=1)
        return (1.0 - similarity).mean()

    @torch.no_grad()
    def _log_fidelity(self, decoded: torch.Tensor, target: torch.Tensor) -> None:
        if self.score == "cross_entropy":
            accuracy = (decoded.argmax(dim=1) == target).float().mean()
            self.last_fidelity = {"decoded_accuracy": accuracy}
            return
        reference = target.to(decoded.dtype)
        error = torch.linalg.vector_norm(decoded - reference) / torch.linalg.vector_norm(reference).clamp_min(1e-12)
        self.last_fidelity = {"relative_error": error}
