"""What the command line runs: thin glue between parsed arguments and the library."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ssl_coded.config import ConfigError, load_config
from ssl_coded.io import write_text
from ssl_coded.train import format_summary, pretrain, run_dir


def run_pretrain(recipe: str, overrides: list[str], resume: bool = False, compare: bool = False) -> dict[str, Any]:
    """Pretrain; with `compare`, also the same recipe with coded-smoothing flipped, in `<name>-coded`
    or `<name>-plain`, and print one table."""
    config = load_config(recipe, overrides)
    if compare and (config.trainer.num_nodes > 1 or str(config.trainer.devices) not in ("1", "auto")):
        raise ConfigError("--compare trains two runs one after the other in one process; under DDP run them separately")
    summary = pretrain(config, resume=resume)
    if not summary:  # not rank 0
        return summary
    other = None
    if compare:
        flipped = dataclasses.replace(
            config,
            coded=dataclasses.replace(config.coded, enabled=not config.coded.enabled),
            name=f"{config.name}-{'plain' if config.coded.enabled else 'coded'}",
        )
        other = pretrain(flipped, resume=resume and (run_dir(flipped) / "checkpoints" / "last.ckpt").is_file())
    plain, coded = (other, summary) if config.coded.enabled else (summary, other)
    table = format_summary(coded or plain, plain if coded else None)
    write_text(run_dir(config) / "results.md", table + "\n")
    print(table)
    print(f"run directory: {run_dir(config)}")
    print(json.dumps({"test_knn_top1": summary["test_knn_top1"]}))
    return summary


def run_eval(
    protocol: str,
    runs: list[str],
    dataset: list[str],
    floors: bool = True,
    index_kind: str = "exact",
    probe: str = "lbfgs",
) -> dict[str, Any]:
    """Evaluate each run and print one table with a row per run (and its floors)."""
    from ssl_coded.eval.report import PROTOCOLS, evaluate, format_rows

    overrides = {}
    for item in dataset:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--dataset {item!r} is not key=value (e.g. root=/data/fashion-mnist)")
        overrides[key] = value
    protocols = PROTOCOLS if protocol == "all" else (protocol,)
    results = {
        run: evaluate(run, protocols, data_overrides=overrides, floors=floors, index_kind=index_kind, probe=probe)
        for run in runs
    }
    print(format_rows(results))
    return results
