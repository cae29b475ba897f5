"""Encoders from anywhere, resolved in one place: what `ssl-coded eval` evaluates and `load_encoder` returns.

An ENCODER is an ssl-coded run directory or checkpoint (its encoder takes the project's uint8 images and
normalises them with the run's stored mean/std; its data are the run's own), an export folder of
`ssl-coded export` (the same, from its encoder.json), or a spec of
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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ssl_coded.data import DataConfig, Splits, check_data, data_record, load_splits, parse_data_overrides
from ssl_coded.errors import ConfigError
from ssl_coded.export import is_export, load_export
from ssl_coded.io import file_sha256
from ssl_coded.provenance import read_run_record

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
        kind = "export" if is_export(spec) else "run"
        if weights is not None or prefix is not None:
            raise ConfigError(f"{spec} is an ssl-coded {kind}: it holds its weights; drop --weights/--prefix")
        if normalize is not None:
            raise ConfigError(
                f"--normalize is for foreign encoders: an ssl-coded {kind} normalises with its own mean/std"
            )
        if kind == "export":
            return _export_encoder(Path(spec), data or [], device)
        from ssl_coded.training.checkpoints import load_trained, resolve_checkpoint

        run_id = (read_run_record(resolve_checkpoint(spec).parent.parent) or {}).get("run_id")
        return _run_encoder(load_trained(spec, device=str(device), data_overrides=data), run_id)
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
    if is_export(spec):
        if weights is not None or prefix is not None:
            raise ConfigError(f"{spec} is an ssl-coded export: it holds its weights; drop weights/prefix")
        return load_export(spec, device)[0]
    if is_run(spec):
        return resolve_encoder(spec, weights, prefix, device=device).module
    return _spec_model(str(spec), weights, prefix, seed)[0].to(device).eval()


def _run_encoder(trained: TrainedRun, run_id: str | None = None) -> Encoder:
    from ssl_coded.training.checkpoints import random_init

    method = trained.method
    record = {
        "checkpoint_hash": trained.checkpoint_hash,
        "data": data_record(trained.config.data),
        "preprocess": {"mean": method.mean.flatten().tolist(), "std": method.std.flatten().tolist(), "stored": True},
    }
    if run_id is not None:  # runs from before run.json have none
        record["run_id"] = run_id

    def floor() -> Encoder:
        untrained = random_init(trained)
        return Encoder(untrained.encoder, untrained.checkpoint_hash, record, trained.splits, trained.config.seed)

    return Encoder(trained.encoder, trained.checkpoint_hash, record, trained.splits, trained.config.seed, floor)


def _export_encoder(folder: Path, data: list[str], device: str | torch.device) -> Encoder:
    """An export folder (`ssl-coded export`): its backbone fed with its recorded mean/std, on its recorded
    data unless `data` changes it. No random-init floor: evaluate the run for that."""
    module, exported = load_export(folder, device)
    config = parse_data_overrides(data, base=DataConfig(**exported["data"]))
    check_data(config)
    source = exported["source"]
    record = {
        "export": str(folder),
        "weights_sha256": exported["weights"]["sha256"],
        "checkpoint_hash": source["checkpoint_sha256"],
        "preprocess": {**exported["input"], "stored": True},
        "data": data_record(config),
    }
    key = f"export-{exported['weights']['sha256']}"
    return Encoder(module, key, record, load_splits(config), exported["seed"])


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
