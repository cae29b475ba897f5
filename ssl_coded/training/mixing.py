"""Mixing regularizers, the positive controls of the study: mixup at a hidden layer, and i-Mix.

- Manifold Mixup (Verma et al. 2019): each step picks one layer from a list (the input among them),
  mixes that layer's output over the batch with a weight ~ Beta(a, a), runs the rest of the network
  on the mixture and scores it against both labels. The mixing is a forward hook on the chosen
  submodule, so it works on any dotted name.
- i-Mix (Lee et al. 2021): a self-supervised method learns to tell the instances of a batch apart;
  i-Mix mixes the inputs of one view and asks the model to find both instances in the other view, in
  proportion to the mixing weight (the instances are the virtual labels). SimCLR's form is a soft
  cross-entropy over the other view's embeddings (MoCo's also over its queue of negatives); BYOL's
  regresses the mixture of the two targets. Methods without instance labels (VICReg, Barlow Twins) take
  the same reading as a mixture of losses: their own loss against each partner, weighted (Un-Mix, Shen
  et al. 2022, which reduces to i-Mix's soft cross-entropy for a contrastive loss).
  This is i-Mix-style rather than the paper's recipe: its loss is added to the method's own (weighted
  by `method.mixing_weight`) instead of replacing it, one weight is drawn per batch, and only the first
  view is mixed (BYOL: one direction), so the control costs one more pass per step.

Example:
    >>> loss = manifold_mixup_loss(model, x, labels, ["input", "backbone.features.1"], alpha=2.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INPUT = "input"  # the layer name that mixes the images themselves


def mixing_weight(alpha: float) -> float:
    """A draw of Beta(alpha, alpha) from torch's generator (seeded runs repeat); alpha 0 means no mixing."""
    return float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0


def mix(x: Tensor, weight: float, perm: Tensor) -> Tensor:
    return weight * x + (1 - weight) * x[perm]


def mixed_cross_entropy(logits: Tensor, targets: Tensor, weight: float, perm: Tensor) -> Tensor:
    """The loss of a mixed batch: cross-entropy against each item's target (weight) and its partner's."""
    return weight * F.cross_entropy(logits, targets) + (1 - weight) * F.cross_entropy(logits, targets[perm])


def check_layers(model: nn.Module, layers: Sequence[str]) -> None:
    """Refuse, in one line, a layer list that is empty or names no submodule of `model`."""
    names = {name for name, _ in model.named_modules() if name}
    if unknown := [layer for layer in layers if layer != INPUT and layer not in names]:
        close = sorted(n for n in names if n.startswith("backbone"))[:8]
        raise ValueError(f"method.mixup_layers: {unknown} are not submodules; use {INPUT!r} or e.g. {close}")
    if not layers:
        raise ValueError(f"method.mixup_layers is empty; give at least one layer, e.g. [{INPUT}]")


def manifold_mixup_loss(model: nn.Module, x: Tensor, labels: Tensor, layers: Sequence[str], alpha: float) -> Tensor:
    """Cross-entropy of `model` on a batch mixed at one layer drawn from `layers`, against both labels.

    Args:
        model: maps `x` to logits.
        x: the (augmented, normalised) inputs.
        labels: class indices.
        layers: candidate layers, dotted submodule names of `model` or "input"; one is drawn per call.
        alpha: the Beta(alpha, alpha) parameter of the mixing weight.
    """
    layer = layers[int(torch.randint(len(layers), ()))]
    weight = mixing_weight(alpha)
    perm = torch.randperm(len(x), device=x.device)
    if layer == INPUT:
        logits = model(mix(x, weight, perm))
    else:
        calls = []

        def mixed(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
            calls.append(module)  # the return value replaces the submodule's output for the rest of this forward
            return mix(out, weight, perm)

        handle = model.get_submodule(layer).register_forward_hook(mixed)
        try:
            logits = model(x)
        finally:
            handle.remove()
        if len(calls) != 1:  # unmixed, the two-label loss would be label noise; mixed twice, another method
            raise ValueError(
                f"method.mixup_layers: {layer!r} ran {len(calls)} times in one forward; mix at a layer that runs once"
            )
    return mixed_cross_entropy(logits, labels, weight, perm)


def imix_contrastive_loss(
    mixed: Tensor, other: Tensor, weight: float, perm: Tensor, temperature: float, negatives: Tensor | None = None
) -> Tensor:
    """i-Mix for SimCLR and MoCo: embeddings of mixed first views against the second views of all instances.

    Args:
        mixed: (n, d) projections of `mix(view0, weight, perm)`.
        other: (n, d) projections (MoCo: momentum keys) of view1 (the same instances, unmixed).
        weight, perm: the mixing weight and permutation used for `mixed`.
        temperature: the contrastive temperature.
        negatives: (k, d) further keys that are no instance of the batch (MoCo's queue), or None.

    Returns:
        Soft-target cross-entropy: instance i carries weight, instance perm[i] carries 1 - weight.
    """
    keys = other if negatives is None else torch.cat([other, negatives.to(other.dtype)])
    logits = F.normalize(mixed, dim=1) @ F.normalize(keys, dim=1).T / temperature
    instances = torch.arange(len(mixed), device=mixed.device)  # the virtual labels: instance perm[i] is i's partner
    return mixed_cross_entropy(logits, instances, weight, perm)


def imix_partner_loss(
    criterion: Callable[[Tensor, Tensor], Tensor], mixed: Tensor, other: Tensor, weight: float, perm: Tensor
) -> Tensor:
    """i-Mix for a method without instance labels (VICReg, Barlow Twins): its loss against both partners.

    Args:
        criterion: the method's loss of two aligned (n, d) embeddings.
        mixed: (n, d) projections of `mix(view0, weight, perm)`.
        other: (n, d) projections of view1.
        weight, perm: as for the mixed view.

    Returns:
        weight x criterion(mixed, other) + (1 - weight) x criterion(mixed, other[perm]).
    """
    return weight * criterion(mixed, other) + (1 - weight) * criterion(mixed, other[perm])


def imix_regression_loss(prediction: Tensor, target: Tensor, weight: float, perm: Tensor) -> Tensor:
    """i-Mix for BYOL: the prediction of a mixed view regresses the same mixture of the targets.

    Args:
        prediction: (n, d) predictions of `mix(view0, weight, perm)`.
        target: (n, d) target-network projections of view1 (no gradient).
        weight, perm: as for the mixed view.

    Returns:
        Negative cosine similarity to the normalised targets mixed with the same weight.
    """
    target = F.normalize(target, dim=1)
    return -F.cosine_similarity(prediction, mix(target, weight, perm), dim=1).mean()
