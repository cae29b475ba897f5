"""What the command line runs: thin glue between parsed arguments and the library."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ssl_coded.config import ConfigError, RecipeConfig, load_config, with_overrides
from ssl_coded.io import write_text
from ssl_coded.train import format_summary, pretrain, run_dir


def run_pretrain(recipe: str, overrides: list[str], resume: bool = False, compare: bool = False) -> dict[str, Any]:
    """Pretrain; with `compare`, also the same recipe with coded-smoothing flipped, in `<name>-coded`
    or `<name>-plain`, and print one table."""
    config = load_config(recipe, overrides)
    if config.method.name == "supervised":
        raise ConfigError(f"recipe {recipe!r} trains a classifier: run `ssl-coded train {recipe}`")
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


REGULARIZERS = ("erm", "mixup", "coded")


def run_train(
    recipe: str, overrides: list[str], resume: bool = False, compare: bool = False, attack: bool = False
) -> dict[str, Any]:
    """Train a classifier from a supervised recipe. With `compare`, train ERM, mixup and coded-smoothing
    (same backbone, data and budget) into `<out_dir>/<name>/{erm,mixup,coded}` and print one table;
    with `attack`, then run the attack harness on them and write its report beside them."""
    config = load_config(recipe, overrides)
    if config.method.name != "supervised":
        raise ConfigError(f"recipe {recipe!r} is a {config.method.name} recipe; `train` needs method.name=supervised")
    if compare and (config.trainer.num_nodes > 1 or str(config.trainer.devices) not in ("1", "auto")):
        raise ConfigError(
            "--compare trains three runs one after the other in one process; under DDP run them separately"
        )
    parent = run_dir(config)
    variants = REGULARIZERS if compare else (config.method.regularizer,)
    summaries = {}
    for regularizer in variants:
        variant = dataclasses.replace(
            config,
            method=dataclasses.replace(config.method, regularizer=regularizer),
            out_dir=str(parent) if compare else config.out_dir,
            name=regularizer if compare else config.name,
        )
        done = (run_dir(variant) / "summary.json").is_file()
        if resume and done:
            summaries[regularizer] = json.loads((run_dir(variant) / "summary.json").read_text())
            continue
        last = run_dir(variant) / "checkpoints" / "last.ckpt"
        summaries[regularizer] = pretrain(variant, resume=resume and last.is_file())
        if not summaries[regularizer]:  # not rank 0
            return {}
    table = format_classifiers(summaries)
    write_text(parent / "results.md", table + "\n")
    print(table)
    if attack:
        from ssl_coded.eval.attack import run_attack

        runs = [parent / r for r in variants] if compare else [parent]
        run_attack(runs, parent)
    print(f"run directory: {parent}")
    return summaries


def format_classifiers(summaries: dict[str, dict[str, Any]]) -> str:
    lines = ["| regularizer | test accuracy | best val accuracy | train s |", "|---|---|---|---|"]
    for name, s in summaries.items():
        lines.append(f"| {name} | {s['test_accuracy']:.4f} | {s['best_val_accuracy']:.4f} | {s['seconds']:.0f} |")
    return "\n".join(lines)


def run_attack_command(runs: list[str], out_dir: str | None, overrides: list[str]) -> dict[str, Any]:
    """`ssl-coded attack RUN...`: a directory holding erm/mixup/coded runs stands for all of them."""
    from pathlib import Path

    from ssl_coded.eval.attack import run_attack

    expanded = []
    for run in map(Path, runs):
        children = [run / r for r in REGULARIZERS if (run / r / "checkpoints").is_dir()]
        expanded += children if children and not (run / "checkpoints").is_dir() else [run]
    for item in overrides:
        if "=" not in item or not item.startswith("attack."):
            raise ConfigError(f"override {item!r} is not attack.<key>=<value> (e.g. attack.num_examples=100)")
    with_overrides(RecipeConfig(name="check"), overrides)  # bad keys and values fail before any attack
    return run_attack(expanded, out_dir or (runs[0] if len(runs) == 1 else expanded[0].parent), overrides)
