"""Robustness of a representation: its linear probe, attacked through the encoder.

A self-supervised encoder has no classifier to attack, so the protocol fits one, the linear probe of
the `linear` protocol (C chosen on validation, refit on train + validation), and serves the pipeline
pixels in [0, 1] -> encoder -> standardisation -> linear head as one differentiable model. The attack
harness then attacks it end to end (FGSM, PGD, Square and torchattacks' APGD-CE, APGD-DLR and Square),
with its checks against masked gradients, beside the same probe on the floors' features (random init,
raw pixels).

Example:
    >>> probed = probe_classifier(encoder, features, device="cpu")
    >>> logits = probed(test_images_in_0_1)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from ssl_coded.eval.linear_probe import ProbeResult, linear_probe
from ssl_coded.eval.protocols.base import SplitFeatures
from ssl_coded.eval.protocols.probe import probe_splits
from torch import Tensor, nn


class ProbedEncoder(nn.Module):
    """Pixels in [0, 1] -> logits of the probe on the encoder's features."""

    def __init__(self, encoder: Callable[[Tensor], Tensor], probe: ProbeResult) -> None:
        super().__init__()
        if probe.model is None or probe.mean is None or probe.scale is None:
            raise ValueError("the probe holds no model to serve; fit it with the torch solver")
        if not np.array_equal(probe.model.classes, np.arange(len(probe.model.classes))):
            raise ValueError(
                f"the probe saw the classes {probe.model.classes.tolist()}; every class needs train images"
            )
        self.encoder = encoder
        self.register_buffer("mean", probe.mean.float())
        self.register_buffer("scale", probe.scale.float())
        self.register_buffer("coef", probe.model.coef.float())
        self.register_buffer("intercept", probe.model.intercept.float())

    def forward(self, x: Tensor) -> Tensor:
        features = (self.encoder(x).float() - self.mean) / self.scale
        return nn.functional.linear(features, self.coef, self.intercept)


def probe_classifier(
    encoder: Callable[[Tensor], Tensor], features: SplitFeatures, seed: int = 0, device: torch.device | None = None
) -> tuple[ProbedEncoder, ProbeResult]:
    """The encoder with the linear probe fitted on its features (as the `linear` protocol fits it)."""
    (fit_x, fit_y), (val_x, val_y) = probe_splits(features, seed)
    test_x, test_y = features["test"]
    probe = linear_probe(np.asarray(fit_x), fit_y, np.asarray(val_x), val_y, np.asarray(test_x), test_y, device=device)
    probed = ProbedEncoder(encoder, probe)  # its buffers on the probe's device; the encoder stays where it is
    return (probed.to(device) if device is not None else probed).eval(), probe
