"""Randomized coded inference: a coded pass over a randomly permuted batch, as a defence.

Which Chebyshev point (and so which mixture) each sample gets depends on a random permutation,
so the prediction for x_k is a random function of the whole batch. Averaging over draws reduces
the variance. Gradients flow (attacks differentiate through it); wrap in torch.no_grad() to serve.

Example:
    >>> scheme = CodingScheme(kind="berrut", coded_ratio=4.0)
    >>> logits = randomized_coded_predict(model, images, scheme, num_draws=4, generator=0)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssl_coded.coding import MIN_BATCH, CodingScheme


def make_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    """A CPU generator from a seed; a generator passes through; None uses the global RNG."""
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    return generator


def randomized_coded_predict(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scheme: CodingScheme,
    num_draws: int = 1,
    generator: torch.Generator | int | None = None,
) -> torch.Tensor:
    """Mean over `num_draws` random permutations of un-permute(D @ fn(E @ x[perm])).

    Args:
        fn: the model; maps a batch to a batch of outputs.
        x: the batch to predict, shape (K, ...), K >= 2.
        scheme: how to code (family, N, lambdas).
        num_draws: number of random permutations averaged.
        generator: a torch.Generator (on any device), or an int seed (a CPU generator) for a
            reproducible prediction; None uses the global RNG of x's device.

    Returns:
        The randomized outputs, in the order of x.
    """
    if x.shape[0] < MIN_BATCH:
        raise ValueError(
            f"randomized coded inference needs a batch of at least {MIN_BATCH}, got {x.shape[0]}; "
            "predict several inputs together"
        )
    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}")
    generator = make_generator(generator)
    total = None
    for _ in range(num_draws):
        device = generator.device if generator is not None else x.device
        perm = torch.randperm(x.shape[0], generator=generator, device=device).to(x.device)
        decoded = scheme.coded_forward(fn, x[perm])
        # decoded[i] estimates fn(x[perm[i]]), so position j takes row argsort(perm)[j]
        unpermuted = decoded[torch.argsort(perm)]
        total = unpermuted if total is None else total + unpermuted
    return total / num_draws
