"""Attacking trained classifier runs (`ssl-coded attack`, `train --attack`): the glue that loads the runs
with the training layer and hands their classifiers, and randomized coded inference around the coded
ones, to the evaluation layer's attack harness."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ssl_coded.coding import CodingScheme
from ssl_coded.errors import ConfigError
from ssl_coded.inference import RandomizedCodedClassifier

if TYPE_CHECKING:
    from ssl_coded.eval.robustness.harness import Target
    from ssl_coded.training.checkpoints import TrainedRun
    from ssl_coded.training.config import RecipeConfig


def run_attack_command(
    runs: list[str], out_dir: str | None, overrides: list[str], device: str = "auto"
) -> dict[str, Any]:
    """`ssl-coded attack RUN...`: a directory holding erm/mixup/coded runs stands for all of them."""
    from ssl_coded.training.config import RecipeConfig
    from ssl_coded.training.methods import REGULARIZERS
    from ssl_coded.training.recipes import with_overrides

    expanded = []
    for run in map(Path, runs):
        children = [run / r for r in REGULARIZERS if (run / r / "checkpoints").is_dir()]
        expanded += children if children and not (run / "checkpoints").is_dir() else [run]
    for item in overrides:
        if "=" not in item or not item.startswith("attack."):
            raise ConfigError(f"override {item!r} is not attack.<key>=<value> (e.g. attack.num_examples=100)")
    with_overrides(RecipeConfig(name="check"), overrides)  # bad keys and values fail before any attack
    return attack_runs(expanded, out_dir or (runs[0] if len(runs) == 1 else expanded[0].parent), overrides, device)


def rci_model(classify: Any, config: RecipeConfig, reference: torch.Tensor) -> RandomizedCodedClassifier:
    """The recipe's randomized coded inference around a classifier; short groups are padded with `reference`."""
    inference = config.inference
    scheme = CodingScheme(
        inference.kind,
        coded_ratio=inference.coded_ratio,
        lambda_enc=inference.lambda_enc,
        lambda_dec=inference.lambda_dec,
    )
    return RandomizedCodedClassifier(
        classify, scheme, inference.batch_size, inference.num_draws, reference=reference, generator=config.seed
    )


def load_targets(runs: list[str | Path], device: str | torch.device = "cpu") -> tuple[list[Target], TrainedRun]:
    """Classifiers from run directories (named by their regularizer), each coded one also behind RCI."""
    from ssl_coded.eval.robustness.harness import Target
    from ssl_coded.training.checkpoints import load_trained

    targets: list[Target] = []
    first: TrainedRun | None = None
    for run in runs:
        trained = load_trained(run, device=str(device))
        config = trained.config
        if config.method.name != "supervised":
            raise ValueError(f"{run} is a {config.method.name} run; attacks need a classifier from `ssl-coded train`")
        classify = trained.method.classify
        name = config.method.regularizer
        if any(t.name == name for t in targets):
            raise ValueError(f"two runs trained with {name!r}; attack one run per regularizer at a time")
        if first is not None and config.data != first.config.data:
            raise ValueError(f"{run} was trained on other data than {runs[0]}; attack runs of one dataset together")
        targets.append(Target(name, classify))
        first = first or trained
        if name == "coded":
            generator = torch.Generator().manual_seed(config.seed)
            pick = torch.randperm(len(trained.splits.train), generator=generator)[: config.inference.batch_size]
            reference = trained.splits.train.take(pick)[0].to(device).float() / 255  # documented, seeded padding rows
            targets.append(Target(f"{name} + RCI", rci_model(classify, config, reference), classify))
    if first is None:
        raise ValueError("no runs to attack; give classifier run directories")
    return targets, first


def attack_runs(
    runs: list[str | Path], out_dir: str | Path, overrides: list[str] | None = None, device: str = "auto"
) -> dict[str, Any]:
    """Attack every run (and RCI on the coded ones) on a seeded subset of the test split; write the report.
    `device`: "auto" (a GPU where there is one), "cpu", "cuda[:N]"; the attacks' random draws come
    from CPU generators, so a seed gives the same images and starts everywhere."""
    from ssl_coded.eval.features import resolve_device
    from ssl_coded.eval.robustness.harness import AttackSettings, run_attack
    from ssl_coded.training.recipes import with_overrides

    where = resolve_device(device)
    targets, first = load_targets(runs, where)
    config, test = first.config, first.splits.test
    cfg = AttackSettings(**dataclasses.asdict(with_overrides(config, overrides or []).attack))
    # attack.rci=false: the deterministic models alone, e.g. on more images than RCI's cost allows
    targets = [target for target in targets if cfg.rci or not target.randomized]
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(config.seed))[: cfg.num_examples]
    inference = config.inference
    defence = (
        f"RCI: {inference.kind}, N/K={inference.coded_ratio:g}, K={inference.batch_size}, {inference.num_draws} draw(s)"
        if any(target.randomized for target in targets)
        else ""
    )
    return run_attack(
        targets,
        test.take(pick)[0].to(where).float() / 255,
        test.labels[pick].to(where),
        cfg,
        out_dir,
        batch_size=inference.batch_size,
        seed=config.seed,
        data_name=config.data.name,
        defence=defence,
        record={"inference": dataclasses.asdict(inference), "runs": [str(r) for r in runs]},
    )


ROBUST_DIR = "robust"  # inside the evaluation's output folder: attack.md, attack.json, robustness.png


def attack_encoder(
    spec: str | Path,
    cfg: Any,
    *,
    data: list[str] | None = None,
    weights: str | Path | None = None,
    prefix: str | None = None,
    normalize: str | None = None,
    out_dir: str | Path | None = None,
    device: str = "auto",
    floors: bool = True,
    batch_size: int = 64,
) -> dict[str, Any]:
    """`ssl-coded eval robust ENCODER`: the linear probe on the encoder's features (and on its floors'),
    each served as one model from pixels to logits and attacked end to end by the harness, into
    `<out>/robust/` (refused before anything is written if a report is already there).

    Args:
        spec: any ENCODER `ssl-coded eval` takes (`ssl_coded.encoders.resolve_encoder`).
        cfg: the harness's `AttackSettings` (RCI does not apply: a probe is deterministic).
        out_dir: default: where `ssl-coded eval` writes for this encoder.
    """
    from ssl_coded.commands import default_out
    from ssl_coded.data.encode import raw_pixels
    from ssl_coded.encoders import resolve_encoder
    from ssl_coded.eval.features import cached_features, encoder_source, resolve_device
    from ssl_coded.eval.robustness.encoder_probe import probe_classifier
    from ssl_coded.eval.robustness.harness import Target, run_attack

    out = Path(out_dir or default_out(spec, weights))
    if (out / ROBUST_DIR / "attack.json").exists():
        raise ConfigError(f"{out / ROBUST_DIR} already holds a robustness report; move it away or choose --out")
    where = resolve_device(device)
    resolved = resolve_encoder(spec, weights, prefix, data=data, normalize=normalize, device=where)
    encoders = {"encoder": (resolved.module, resolved.key)}
    if floors and resolved.random_init is not None:
        floor = resolved.random_init()
        encoders["random init"] = (floor.module, floor.key)
    if floors:
        encoders["raw pixels"] = (raw_pixels, "")
    splits = resolved.splits
    datasets = {"train": splits.train, "val": splits.val, "test": splits.test}
    data_key = json.dumps(resolved.record, sort_keys=True)
    targets, clean = [], {}
    for name, (module, key) in encoders.items():
        source = encoder_source(module, key, where)
        features = {
            split: cached_features(source, dataset, split, out / "features", batch_size, data_key)
            for split, dataset in datasets.items()
            if dataset is not None and len(dataset)
        }
        probed, probe = probe_classifier(module, features, resolved.seed, where)
        targets.append(Target(f"{name} + linear probe", probed))
        clean[name] = {"linear_top1": probe.test_top1, "linear_c": probe.best_c}
    test = splits.test
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(resolved.seed))[: cfg.num_examples]
    return run_attack(
        targets,
        test.take(pick)[0].to(where).float() / 255,
        test.labels[pick].to(where),
        dataclasses.replace(cfg, rci=False),
        out / ROBUST_DIR,
        batch_size=batch_size,
        seed=resolved.seed,
        data_name=str(resolved.record.get("data", {}).get("name", "")),
        record={**resolved.record, "probes": clean},
    )
