"""Encoders from anywhere, as modules that `ssl_coded.eval.evaluate` takes.

`load_encoder(spec)` accepts an ssl-coded run directory or checkpoint (its encoder takes the
project's uint8 images and normalises them with the run's stored mean/std), or a spec of
`ssl_coded.eval.encoders`: `torchvision:NAME`, `timm:NAME`, `module.path:callable`, with weights
from any library's file (`--weights`; the prefix of its keys found automatically). Those take what
your transforms make; `ssl-coded eval` puts an explicit `Preprocess` in front of them.

Example:
    >>> encoder = load_encoder("torchvision:resnet18", weights="simclr.pt")
    >>> random_init = load_encoder("torchvision:resnet18")  # the same model, seeded, untrained
    >>> run_encoder = load_encoder("runs/simclr-digits")
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def is_run(spec: str | Path) -> bool:
    """Whether an ENCODER argument names an ssl-coded run directory or checkpoint file (else a spec)."""
    path = Path(spec)
    return path.exists() or ":" not in str(spec)  # specs are KIND:NAME; anything else is a path


def load_encoder(
    spec: str | Path,
    weights: str | Path | None = None,
    prefix: str | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """The encoder `spec` names, in eval mode on `device`.

    Args:
        spec: an ssl-coded run directory or checkpoint, or `torchvision:NAME`, `timm:NAME`,
            `module.path:callable`.
        weights: a state_dict or checkpoint file for a spec (None: the seeded random initialisation).
        prefix: the prefix of the encoder's keys in `weights` (None: found where unambiguous).
        seed: seeds a spec's initialisation.
        device: where the encoder goes.
    """
    if is_run(spec):
        if weights is not None or prefix is not None:
            raise ValueError(f"{spec} is an ssl-coded run: its checkpoint holds its weights; drop --weights/--prefix")
        from ssl_coded.training.checkpoints import load_trained

        return load_trained(spec, device=str(device)).encoder.eval()
    from ssl_coded.eval.encoders import build_encoder, load_weights

    encoder = build_encoder(str(spec), seed)
    if weights is not None:
        load_weights(encoder, weights, prefix)
    elif prefix is not None:
        raise ValueError("--prefix needs --weights: the file whose keys carry it")
    return encoder.to(device).eval()
