"""Encoders from anywhere, resolved in one place: what `ssl-coded eval` evaluates and `load_encoder` returns.

An ENCODER is an ssl-coded run directory or checkpoint (its encoder takes the project's uint8 images and
normalises them with the run's stored mean/std; its data are the run's own), or a spec of
`ssl_coded.eval.encoders`: `torchvision:NAME`, `timm:NAME`, `module.path:callable`, with weights from any
library's file (the prefix of its keys found automatically), fed through an explicit `Preprocess`
(`normalize`: imagenet by default) on the data the `data` settings describe.

`resolve_encoder` gives the whole `Encoder`: the module with its preprocessing, the key of its feature
cache, what results.json records about it, its data and its random-init floor. `load_encoder` gives the
bare module (for a spec: without preprocessing, so that it takes what your transforms make).

Example:
    >>> encoder = resolve_encoder("torchvision:resnet18", weights="simclr.pt", data=["name=imagefolder", "root=DIR"])
    >>> features = encoder.module(uint8_images)
    >>> bare = load_encoder("torchvision:resnet18", weights="simclr.pt")
    >>> run_encoder = load_encoder("runs/simclr-digits")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ssl_coded.data import DataConfig, Splits, check_data, load_splits, parse_data_overrides
from ssl_coded.errors import ConfigError
from ssl_coded.io import file_sha256

if TYPE_CHECKING:
    from ssl_coded.training.checkpoints import TrainedRun


def is_run(spec: str | Path) -> bool:
    """Whether an ENCODER argument names an ssl-coded run directory or checkpoint file (else a spec)."""
    path = Path(spec)
    return path.exists() or ":" not in str(spec)  # specs are KIND:NAME; anything else is a path


@dataclass
class Encoder:
    """An encoder resolved for evaluation.

    Args:
        module: the data's uint8 images (n, C, H, W) -> (n, dim) features, its preprocessing inside; in eval
            mode on its device.
        key: changes whenever the weights (or what the module is fed) do: names its feature cache.
        record: what results.json records about it (checkpoint or spec and weights with their hashes, the
            preprocessing, the data).
        splits: the data it is evaluated on.
        seed: seeds its evaluation (a run's recipe seed, or the seed a spec was initialised with).
        random_init: the same architecture untrained (the random-init floor), where there is one to build.
    """

    module: nn.Module
    key: str
    record: dict[str, Any]
    splits: Splits
    seed: int
    random_init: Callable[[], Encoder] | None = None


def resolve_encoder(
    spec: str | Path,
    weights: str | Path | None = None,
    prefix: str | None = None,
    *,
    data: list[str] | None = None,
    normalize: str | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Encoder:
    """The encoder an ENCODER argument names, with its preprocessing, data and floor.

    Args:
        spec: an ssl-coded run directory or checkpoint, or `torchvision:NAME`, `timm:NAME`, `module.path:callable`.
        weights: a state_dict or checkpoint file for a spec (None: the seeded random initialisation).
        prefix: the prefix of the encoder's keys in `weights` (None: found where unambiguous).
        data: `key=value` data settings: for a run, changes to its recipe's data (e.g. `root=/data`); for a
            spec, the data to evaluate on (default: digits).
        normalize: a spec's input normalisation (`ssl_coded.eval.preprocess.normalisation`; default imagenet).
        seed: seeds a spec's initialisation.
        device: where the encoder goes.

    Raises:
        ConfigError: options that do not belong to this kind of encoder, or bad data settings.
    """
    if is_run(spec):
        if weights is not None or prefix is not None:
            raise ConfigError(f"{spec} is an ssl-coded run: its checkpoint holds its weights; drop --weights/--prefix")
        if normalize is not None:
            raise ConfigError("--normalize is for foreign encoders: a run normalises with its stored mean/std")
        from ssl_coded.training.checkpoints import load_trained

        return _run_encoder(load_trained(spec, device=str(device), data_overrides=data))
    return _spec_encoder(str(spec), weights, prefix, data or [], normalize or "imagenet", seed, device)


def load_encoder(
    spec: str | Path,
    weights: str | Path | None = None,
    prefix: str | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """The encoder `spec` names, in eval mode on `device`: a run's takes uint8 images (its normalisation
    inside); a spec's is the bare model (what your transforms make goes in). Arguments as `resolve_encoder`'s."""
    if is_run(spec):
        return resolve_encoder(spec, weights, prefix, device=device).module
    return _spec_model(str(spec), weights, prefix, seed)[0].to(device).eval()


def _run_encoder(trained: TrainedRun) -> Encoder:
    from ssl_coded.training.checkpoints import random_init

    method = trained.method
    record = {
        "checkpoint_hash": trained.checkpoint_hash,
        "data": data_record(trained.config.data),
        "preprocess": {"mean": method.mean.flatten().tolist(), "std": method.std.flatten().tolist(), "stored": True},
    }

    def floor() -> Encoder:
        untrained = random_init(trained)
        return Encoder(untrained.encoder, untrained.checkpoint_hash, record, trained.splits, trained.config.seed)

    return Encoder(trained.encoder, trained.checkpoint_hash, record, trained.splits, trained.config.seed, floor)


def _spec_model(
    spec: str, weights: str | Path | None, prefix: str | None, seed: int
) -> tuple[nn.Module, dict[str, str]]:
    """A spec's model at the seed's initialisation, with `weights` loaded; and where in the file they were."""
    from ssl_coded.eval.encoders import build_encoder, load_weights

    if prefix is not None and weights is None:
        raise ConfigError("--prefix needs --weights: the file whose keys carry it")
    model = build_encoder(spec, seed)
    return model, (load_weights(model, weights, prefix) if weights is not None else {})


def _spec_encoder(
    spec: str,
    weights: str | Path | None,
    prefix: str | None,
    data: list[str],
    normalize: str,
    seed: int,
    device: str | torch.device,
) -> Encoder:
    from ssl_coded.eval.encoders import KINDS, build_encoder, input_channels
    from ssl_coded.eval.features import module_key
    from ssl_coded.eval.preprocess import Preprocess, normalisation

    if prefix is not None and weights is None:  # before the data is read or the model built
        raise ConfigError("--prefix needs --weights: the file whose keys carry it")
    config = parse_data_overrides(data)
    check_data(config)
    model, loaded = _spec_model(spec, weights, prefix, seed)
    splits = load_splits(config)
    channels = input_channels(model) or splits.channels
    stats = normalisation(normalize, channels, (splits.mean, splits.std))  # grayscale stats repeat to RGB
    preprocess = Preprocess(channels, *(stats or (None, None)))
    record = {
        "encoder": spec,
        "weights": str(weights) if weights else None,
        "weights_sha256": file_sha256(weights) if weights else None,
        **loaded,
        "preprocess": {"normalize": normalize, "image_size": splits.image_size, **preprocess.describe()},
        "data": data_record(config),
    }

    def fed(bare: nn.Module, name: str) -> tuple[nn.Module, str]:
        module = nn.Sequential(preprocess, bare)
        return module.to(device).eval(), module_key(module, spec, name)

    def floor() -> Encoder:
        return Encoder(*fed(build_encoder(spec, seed), "random init"), record, splits, seed)

    # without weights the encoder is its random initialisation; user code may load its own weights
    has_floor = weights is not None and spec.split(":")[0] in KINDS
    return Encoder(*fed(model, "trained"), record, splits, seed, floor if has_floor else None)


def data_record(config: DataConfig) -> dict[str, Any]:
    """The data settings that change what is evaluated (not how it is loaded: workers, downloads)."""
    data = dataclasses.asdict(config)
    how = ("num_workers", "download", "stream", "memory_budget_mb")
    return {key: value for key, value in data.items() if key not in how}
