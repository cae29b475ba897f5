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
            "predict several inputs together or pad with a reference batch (RandomizedCodedClassifier)"
        )
    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}")
    generator = make_generator(generator)
    total: torch.Tensor | None = None
    for _ in range(num_draws):
        device = generator.device if generator is not None else x.device
        perm = torch.randperm(x.shape[0], generator=generator, device=device).to(x.device)
        decoded = scheme.coded_forward(fn, x[perm])
        # decoded[i] estimates fn(x[perm[i]]), so position j takes row argsort(perm)[j]
        unpermuted = decoded[torch.argsort(perm)]
        total = unpermuted if total is None else total + unpermuted
    assert total is not None  # num_draws >= 1
    return total / num_draws


class RandomizedCodedClassifier:
    """Randomized coded inference as a drop-in model: inputs are coded in groups of `group_size`.

    A group smaller than `group_size` (a single image, or the tail of a set) is filled up with
    rows of `reference`, a fixed batch of inputs the caller documents and seeds (e.g. a seeded
    sample of training images), and only its own outputs are returned. Without a reference, a
    group below the coder's minimum is refused with a clear error.

    Args:
        fn: the deterministic model (the surrogate an attacker may also use).
        scheme: how to code.
        group_size: K, inputs coded together.
        num_draws: random permutations averaged per prediction.
        reference: padding rows, shape (>= group_size - 1, ...); moved to the inputs' device and dtype.
        generator: a seed or generator for reproducible permutations; None uses the global RNG (the
            "mix" ablation draws its mixtures from the global RNG in any case).

    Example:
        >>> defended = RandomizedCodedClassifier(model, CodingScheme("berrut", coded_ratio=4.0), 64)
        >>> logits = defended(images)  # any number of images; gradients flow for attacks
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        scheme: CodingScheme,
        group_size: int = 64,
        num_draws: int = 1,
        reference: torch.Tensor | None = None,
        generator: torch.Generator | int | None = None,
    ) -> None:
        if group_size < MIN_BATCH:
            raise ValueError(f"group_size must be >= {MIN_BATCH}, got {group_size}")
        if reference is not None and len(reference) < group_size - 1:
            raise ValueError(f"the reference batch has {len(reference)} rows; padding needs {group_size - 1}")
        self.fn, self.scheme, self.group_size, self.num_draws = fn, scheme, group_size, num_draws
        self.reference = reference
        self.generator = make_generator(generator)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._predict_group(group) for group in x.split(self.group_size)])

    def _predict_group(self, group: torch.Tensor) -> torch.Tensor:
        missing = self.group_size - len(group)
        if missing and self.reference is not None:
            padded = torch.cat([group, self.reference[:missing].to(group)])
            return randomized_coded_predict(self.fn, padded, self.scheme, self.num_draws, self.generator)[: len(group)]
        return randomized_coded_predict(self.fn, group, self.scheme, self.num_draws, self.generator)
