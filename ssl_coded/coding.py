"""Coding matrices of coded-smoothing: Chebyshev points, smoothing-spline and Berrut coders.

A coded pass over a batch of K items runs a function on N linear combinations of the batch and
interpolates the results back to the K items:

    coded = E @ x          E: N x K, the encoder (fit through (alpha_k, x_k), evaluate at beta_n)
    decoded = D @ f(coded) D: K x N, the decoder (fit through (beta_n, f_n), evaluate at alpha_k)

alpha are Chebyshev points of the first kind (K of them, strictly inside [-1, 1]), beta Chebyshev
points of the second kind (N of them, +-1 included). Both families here are linear smoothers, so
E and D are constant for a given (K, N, family, lambdas): they are built once in float64 with
closed forms (`ssl_coded.coders`), cast once here, and cached per dtype and device.

Example:
    >>> scheme = CodingScheme(kind="berrut", coded_ratio=4.0)
    >>> x = torch.randn(32, 3, 8, 8)
    >>> decoded = scheme.coded_forward(lambda t: t.flatten(1), x)  # ~ x.flatten(1)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ssl_coded.coders import (
    KINDS,
    LAMBDA_UNITS,
    MIN_BATCH,
    Kind,
    LambdaUnits,
    berrut_matrix,
    chebyshev_first_kind,
    chebyshev_second_kind,
    coding_matrices_float64,
    scipy_lambda,
    smoothing_spline_matrix,
)

__all__ = [  # the closed forms are re-exported: `ssl_coded.coding` stays the one name users import
    "KINDS",
    "LAMBDA_UNITS",
    "MIN_BATCH",
    "CodingScheme",
    "Kind",
    "LambdaUnits",
    "berrut_matrix",
    "chebyshev_first_kind",
    "chebyshev_second_kind",
    "coding_matrices",
    "coding_matrices_float64",
    "random_mixing_matrices",
    "scipy_lambda",
    "smoothing_spline_matrix",
]

_TORCH_CACHE: OrderedDict[tuple[object, ...], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
_TORCH_CACHE_SIZE = 64


def matrix_dtype(dtype: torch.dtype) -> torch.dtype:
    """Coding matrices are kept in float32 at least: in bf16/fp16 their rounding alone would set
    an error floor above the interpolation error (about 2e-3 relative at K=1024)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def coding_matrices(
    k: int,
    n: int,
    kind: Kind = "spline",
    lambda_enc: float = 0.0,
    lambda_dec: float = 0.0,
    lambda_units: LambdaUnits = "spacing",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder E (n x k) and decoder D (k x n) as tensors, built in float64, cast once, cached
    (least recently used first out, 64 shapes)."""
    args = (k, n, kind, lambda_enc, lambda_dec, lambda_units, dtype, device)
    if torch.compiler.is_compiling():  # called by name: Dynamo recognises this call, not an alias
        # torch.compile must not trace the build: it runs in float64 numpy (Dynamo cannot wrap these
        # arrays: "Expected np.nditer base") and fills a Python dict. Under compilation it runs eagerly
        # (a graph break), and the graph gets E and D as inputs. The disabled copy is made on first
        # need, so that importing the core does not import Dynamo (seconds) for users who never compile.
        return _eager_coding_matrices()(*args)
    return _cached_coding_matrices(*args)


_EAGER: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {}


def _eager_coding_matrices() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    # a plain dict, not functools.cache: Dynamo warns of "silent incorrectness" when it traces a cached function
    if "disabled" not in _EAGER:
        _EAGER["disabled"] = torch.compiler.disable(_cached_coding_matrices)
    return _EAGER["disabled"]


def _cached_coding_matrices(
    k: int,
    n: int,
    kind: Kind,
    lambda_enc: float,
    lambda_dec: float,
    lambda_units: LambdaUnits,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    device = torch.device(device) if device is not None else torch.device("cpu")
    if kind == "berrut":  # no smoothing knob: one cache entry whatever the lambdas
        lambda_enc = lambda_dec = 0.0
    dtype = matrix_dtype(dtype)
    key = (k, n, kind, float(lambda_enc), float(lambda_dec), lambda_units, dtype, device)
    if key in _TORCH_CACHE:
        _TORCH_CACHE.move_to_end(key)
        return _TORCH_CACHE[key]
    enc, dec = coding_matrices_float64(*key[:6])
    # normal tensors even when first asked for under inference_mode, so training can reuse them
    with torch.inference_mode(False), torch.no_grad():
        _TORCH_CACHE[key] = (_cast(enc, dtype, device), _cast(dec, dtype, device))
    if len(_TORCH_CACHE) > _TORCH_CACHE_SIZE:
        _TORCH_CACHE.popitem(last=False)
    return _TORCH_CACHE[key]


def _cast(matrix: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    tensor = torch.tensor(matrix, dtype=torch.float64)
    # weights far from the diagonal decay below the target precision's smallest normal number:
    # as subnormals they add nothing but can slow CPU arithmetic, so they become exact zeros
    tensor[tensor.abs() < torch.finfo(dtype).tiny] = 0.0
    return tensor.to(device=device, dtype=dtype)


def apply_along_batch(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """matrix @ x along the first (batch) dimension, for x of any trailing shape.

    Computed in the matrix's precision (float32 at least, autocast off) and returned in x's dtype.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = matrix @ x.reshape(x.shape[0], -1).to(matrix.dtype)
    return out.to(x.dtype).reshape(matrix.shape[0], *x.shape[1:])


@dataclass(frozen=True)
class CodingScheme:
    """How a batch is coded: the family, the number of coded samples and the smoothing levels.

    Args:
        kind: "spline" (cubic smoothing spline encoder and decoder), "berrut" (Berrut's
            rational interpolant, no smoothing parameter) or "mix" (the ablation: random pairwise
            mixtures decoded by least squares; see `random_mixing_matrices`).
        num_coded: N, the number of coded samples; if None, N = round(coded_ratio * K).
        coded_ratio: N/K when num_coded is None.
        lambda_enc: encoder spline smoothing (ignored by Berrut), in `lambda_units`.
        lambda_dec: decoder spline smoothing (ignored by Berrut), in `lambda_units`.
        lambda_units: "spacing" (default, batch-size independent), "mean" (1/n data term) or
            "scipy" (raw, as make_smoothing_spline); see `scipy_lambda`.
    """

    kind: Kind = "spline"
    num_coded: int | None = None
    coded_ratio: float = 2.0
    lambda_enc: float = 1e-2
    lambda_dec: float = 1e-2
    lambda_units: LambdaUnits = "spacing"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown coding family {self.kind!r}; choose one of {KINDS}")
        if self.lambda_units not in LAMBDA_UNITS:
            raise ValueError(f"unknown lambda units {self.lambda_units!r}; choose one of {LAMBDA_UNITS}")
        if self.num_coded is not None and self.num_coded < 2:
            raise ValueError(f"num_coded must be at least 2, got {self.num_coded}")
        if self.coded_ratio <= 0:
            raise ValueError(f"coded_ratio must be positive, got {self.coded_ratio}")
        for name in ("lambda_enc", "lambda_dec"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")

    def num_coded_for(self, batch_size: int) -> int:
        """N for a batch of K = batch_size items."""
        if self.num_coded is not None:
            return self.num_coded
        return max(2, math.floor(self.coded_ratio * batch_size + 0.5))  # halves up, not to even

    def matrices(
        self, batch_size: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(E, D) for a batch of `batch_size` items, from the cache (new random ones for "mix")."""
        if self.kind == "mix":
            return random_mixing_matrices(batch_size, self.num_coded_for(batch_size), dtype, device)
        return coding_matrices(
            batch_size,
            self.num_coded_for(batch_size),
            self.kind,
            self.lambda_enc,
            self.lambda_dec,
            self.lambda_units,
            dtype=dtype,
            device=device,
        )

    def coded_forward(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        coded_batch_size: int | None = None,
    ) -> torch.Tensor:
        """D @ fn(E @ x): the decoded estimates of fn(x_k) for every item k of the batch x.

        Args:
            fn: maps a batch to a batch.
            x: the batch, shape (K, ...).
            coded_batch_size: run fn on at most this many coded samples per call (None: all N in
                one call). On CPUs a network's cost per sample grows with the batch once the
                activations leave the cache, so chunks of about K keep the coded pass as cheap per
                sample as the main one. Batch-norm layers then normalise per chunk.
        """
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        enc, dec = self.matrices(x.shape[0], dtype=dtype, device=x.device)
        return apply_along_batch(dec, _run_in_chunks(fn, apply_along_batch(enc, x.to(dtype)), coded_batch_size))

    def gathered_coded_forward(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        coded_batch_size: int | None = None,
    ) -> torch.Tensor:
        """`coded_forward` over the batch gathered from all ranks of torch.distributed.

        Every rank codes the global batch (K = sum of local batches, which must be equal), runs
        fn on its own share of the N coded samples, and the outputs are gathered again and
        decoded; the rank gets the decoded rows of its own items. Gradients flow back across
        ranks, so with DDP's gradient averaging the result equals one process coding the global
        batch (batch-norm layers aside: they normalise per rank).
        """
        import torch.distributed as dist
        from torch.distributed.nn.functional import all_gather

        world, rank = dist.get_world_size(), dist.get_rank()
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        x_all = torch.cat(all_gather(x.to(dtype).contiguous()))
        enc, dec = self.matrices(x_all.shape[0], dtype=dtype, device=x.device)
        coded = apply_along_batch(enc, x_all)
        n, share = coded.shape[0], -(-coded.shape[0] // world)
        if share * world > n:  # equal shares for all_gather; the extra rows are dropped below
            coded = torch.cat([coded, coded[: share * world - n]])
        out_local = _run_in_chunks(fn, coded[rank * share : (rank + 1) * share], coded_batch_size)
        out_all = torch.cat(all_gather(out_local.contiguous()))[:n]
        decoded = apply_along_batch(dec, out_all)
        return decoded[rank * x.shape[0] : (rank + 1) * x.shape[0]]


def random_mixing_matrices(
    k: int, n: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ablation of the coding: E mixes random pairs, (1 - t) x_i + t x_j, and D = pinv(E) decodes
    by least squares (exact for a linear fn). Same cost as a coded pass, no interpolation structure.
    Drawn from torch's global RNG.

    Every item is the larger part (t ~ U(0, 1/2)) of one of the first min(n, k) mixtures. The pairs are
    the same as with t ~ U(0, 1) up to naming which item is i, but E is then diagonally dominant (after
    ordering those rows), so D @ E = I and D's rows are bounded by 1 / min(1 - 2t) (Varah's bound).
    With t ~ U(0, 1) a square E is nearly singular, D amplifies the outputs' errors by orders of
    magnitude (`benchmarks/bench_decoders.py`) and training on its decoded logits collapses: that
    measures the decoder, not the mixing.
    """
    rows = torch.arange(n)
    first = torch.cat([torch.randperm(k), torch.randint(k, (max(0, n - k),))])[:n]
    second = torch.randint(k, (n,))
    t = torch.rand(n, dtype=torch.float64) / 2
    enc = torch.zeros(n, k, dtype=torch.float64)
    enc.index_put_((rows, first), 1 - t, accumulate=True)
    enc.index_put_((rows, second), t, accumulate=True)
    dec = torch.linalg.pinv(enc)
    return enc.to(device=device, dtype=dtype), dec.to(device=device, dtype=dtype)


def _run_in_chunks(
    fn: Callable[[torch.Tensor], torch.Tensor], coded: torch.Tensor, coded_batch_size: int | None
) -> torch.Tensor:
    """fn over the coded samples, in one call or in chunks of at most coded_batch_size."""
    chunks = [coded] if coded_batch_size is None else coded.split(coded_batch_size)
    outputs = [fn(chunk) for chunk in chunks]
    if not all(isinstance(out, torch.Tensor) for out in outputs):
        raise TypeError("the coded function must return a tensor; wrap it so that it returns the output to be decoded")
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)
