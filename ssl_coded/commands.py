"""What the command line runs: the glue that loads runs with the training layer and hands their
encoders (callables) and data (datasets) to the evaluation layer. Only this layer sees both.

The training and evaluation layers are imported inside the functions that use them, so that
pretraining needs only the `train` extra, evaluating a foreign encoder only the `eval` extra (no
Lightning), and a refusal of bad input comes back before either framework is imported.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssl_coded.errors import ConfigError
from ssl_coded.io import write_text
from ssl_coded.results import ENCODER, RANDOM_INIT, RAW_PIXELS
from ssl_coded.rundir import RunLock
from ssl_coded.tables import markdown_table

if TYPE_CHECKING:
    from ssl_coded.eval.settings import EvalSettings
    from ssl_coded.training.config import RecipeConfig


def run_pretrain(
    recipe: str,
    overrides: list[str],
    resume: bool = False,
    compare: bool = False,
    overwrite: bool = False,
    verbose: bool = False,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Pretrain; with `compare`, also the same recipe with coded-smoothing flipped, in `<name>-coded`
    or `<name>-plain`, and print one table. `command` is what run.json records as the command line."""
    from ssl_coded.training.recipes import load_config

    config = load_config(recipe, overrides)
    if config.method.name == "supervised":
        raise ConfigError(f"recipe {recipe!r} trains a classifier: run `ssl-coded train {recipe}`")
    if compare and (config.trainer.num_nodes > 1 or str(config.trainer.devices) not in ("1", "auto")):
        raise ConfigError("--compare trains two runs one after the other in one process; under DDP run them separately")
    # the recipe is sound: now Lightning (a refusal above comes back without it)
    from ssl_coded.training.loop import run_dir
    from ssl_coded.training.summary import format_summary, read_summary

    flipped = dataclasses.replace(
        config,
        coded=dataclasses.replace(config.coded, enabled=not config.coded.enabled),
        name=f"{config.name}-{'plain' if config.coded.enabled else 'coded'}",
    )
    runs = [(config, resume)] + ([(flipped, resume and _has_checkpoint(flipped))] if compare else [])
    sources = [run_source(recipe, overrides, command)]
    if compare:  # what makes the second run differ, as overrides of its own
        flip = [f"coded.enabled={str(flipped.coded.enabled).lower()}", f"name={flipped.name}"]
        sources.append(run_source(recipe, [*overrides, *flip], command))
    with _trained_in_turn(runs, overwrite, verbose, sources) as summaries:
        if not summaries:  # not rank 0
            return {}
        summary, other = summaries[0], summaries[1] if compare else None
        plain, coded = (other, summary) if config.coded.enabled else (summary, other)
        table = format_summary(coded or plain, plain if coded else None)
        write_text(run_dir(config) / "results.md", table + "\n")
    print(table)
    print(read_summary(coded or plain, plain if coded else None, str(run_dir(config))))
    print(f"run directory: {run_dir(config)}")
    print(json.dumps({"test": summary["rows"][ENCODER]}))
    return summary


def default_out(encoder: str | Path, weights: str | Path | None = None) -> Path:
    """Where `ssl-coded eval` writes without --out: a run's own directory (for a checkpoint, the run
    holding its checkpoints/ folder), else ./eval-runs/<name>."""
    path = Path(encoder)
    if path.is_dir():
        return path
    if path.is_file() and path.parent.name == "checkpoints" and (path.parent.parent / "config.yaml").is_file():
        return path.parent.parent
    name = path.stem if path.is_file() else str(encoder).replace(":", "-").replace("/", "-").replace(".", "-")
    return Path("eval-runs") / (f"{name}-{Path(weights).stem}" if weights else name)


def evaluate_encoder(
    encoder: str | Path,
    settings: EvalSettings | None = None,
    *,
    data: list[str] | None = None,
    weights: str | Path | None = None,
    prefix: str | None = None,
    normalize: str | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate one encoder (an ssl-coded run or checkpoint, or a spec: `ssl_coded.encoders.resolve_encoder`)
    beside its floors, as `settings` say; results go to `out_dir` (default: a run's own directory, else
    ./eval-runs/<name>).

    Example:
        >>> evaluate_encoder("runs/simclr-digits", EvalSettings(protocols=("knn",), device="cpu"))
        >>> evaluate_encoder("torchvision:resnet18", weights="w.pt", data=["name=imagefolder", "root=DIR"])
    """
    from ssl_coded.data.encode import raw_pixels as flattened_pixels
    from ssl_coded.encoders import resolve_encoder
    from ssl_coded.eval.features import encoder_source, resolve_device
    from ssl_coded.eval.report import evaluate_sources, raw_pixels
    from ssl_coded.eval.settings import EvalSettings

    settings = settings or EvalSettings()
    where = resolve_device(settings.device)
    resolved = resolve_encoder(encoder, weights, prefix, data=data, normalize=normalize, device=where)
    sources = {ENCODER: encoder_source(resolved.module, resolved.key, where)}
    modules: dict[str, Any] = {ENCODER: resolved.module}  # what the image protocols train through
    if settings.floors and resolved.random_init is not None:
        floor = resolved.random_init()
        sources[RANDOM_INIT] = encoder_source(floor.module, floor.key, where)
        modules[RANDOM_INIT] = floor.module
    if settings.floors:
        sources[RAW_PIXELS] = raw_pixels()
        modules[RAW_PIXELS] = flattened_pixels
    splits = resolved.splits
    return evaluate_sources(
        sources,
        {"train": splits.train, "val": splits.val, "test": splits.test},
        splits.num_classes,
        out_dir or default_out(encoder, weights),
        settings,
        seed=resolved.seed,
        record=resolved.record,
        modules=modules,
    )


def run_eval(
    encoders: list[str],
    settings: EvalSettings,
    dataset: list[str] | None = None,
    weights: str | None = None,
    prefix: str | None = None,
    normalize: str | None = None,
    out: str | None = None,
) -> dict[str, Any]:
    """Evaluate each encoder (an ssl-coded run or checkpoint, or a spec) and print one table with a
    row per encoder (and its floors). With `out` and several encoders, each goes to `out/<name>`."""
    from ssl_coded.encoders import is_run
    from ssl_coded.eval.report import format_rows

    foreign = [e for e in encoders if not is_run(e)]
    if missing := [e for e in encoders if is_run(e) and not Path(e).exists()]:
        raise ConfigError(
            f"{missing[0]} is neither a run directory nor a checkpoint file (nor an encoder spec: "
            "torchvision:NAME, timm:NAME, module.path:callable)"
        )
    if weights and len(foreign) != 1:
        raise ConfigError(f"--weights belongs to one foreign encoder; got {len(foreign)} ({', '.join(foreign)})")
    if (weights or prefix) and not foreign:
        raise ConfigError("--weights/--prefix are for torchvision:/timm:/module:callable encoders; a run holds its own")
    if normalize and len(foreign) != len(encoders):
        raise ConfigError("--normalize is for foreign encoders: an ssl-coded run normalises with its stored mean/std")
    results = {}
    for encoder in encoders:
        where = Path(out) / default_out(encoder, weights).name if out and len(encoders) > 1 else out
        own = {"weights": weights, "prefix": prefix, "normalize": normalize} if encoder in foreign else {}
        results[encoder] = evaluate_encoder(encoder, settings, data=dataset, out_dir=where, **own)
    print(format_rows(results))
    return results


def run_train(
    recipe: str,
    overrides: list[str],
    resume: bool = False,
    compare: bool = False,
    attack: bool = False,
    overwrite: bool = False,
    verbose: bool = False,
    regularizers: tuple[str, ...] | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Train a classifier from a supervised recipe. With `compare`, train `regularizers` (ERM, mixup and
    coded-smoothing by default; same backbone, data and budget) into `<out_dir>/<name>/<regularizer>`
    and print one table; with `attack`, then run the attack harness on them and write its report beside them."""
    from ssl_coded.training.methods import COMPARED, REGULARIZERS
    from ssl_coded.training.recipes import load_config

    if regularizers is not None and not compare:
        raise ConfigError(
            f"--regularizers picks the runs of --compare; add --compare, or train one with "
            f"method.regularizer={regularizers[0] if regularizers else 'coded'}"
        )
    if regularizers is not None and not regularizers:
        raise ConfigError(f"--regularizers names none; give some of {', '.join(REGULARIZERS)}, comma-separated")
    regularizers = regularizers or COMPARED
    if unknown := [r for r in regularizers if r not in REGULARIZERS]:
        raise ConfigError(f"--regularizers: {unknown} are not regularizers; choose from {', '.join(REGULARIZERS)}")
    config = load_config(recipe, overrides)
    if config.method.name != "supervised":
        raise ConfigError(f"recipe {recipe!r} is a {config.method.name} recipe; `train` needs method.name=supervised")
    if compare and (config.trainer.num_nodes > 1 or str(config.trainer.devices) not in ("1", "auto")):
        raise ConfigError(
            "--compare trains three runs one after the other in one process; under DDP run them separately"
        )
    # the recipe and flags are sound: now Lightning (a refusal above comes back without it)
    from ssl_coded.training.checkpoints import CheckpointError
    from ssl_coded.training.loop import run_dir

    parent = run_dir(config)
    variants = {
        regularizer: dataclasses.replace(
            config,
            method=dataclasses.replace(config.method, regularizer=regularizer),
            out_dir=str(parent) if compare else config.out_dir,
            name=regularizer if compare else config.name,
        )
        for regularizer in (regularizers if compare else (config.method.regularizer,))
    }
    resumable = {r: resume and _has_checkpoint(v) for r, v in variants.items()}
    if resume and not any(resumable.values()):
        raise CheckpointError(f"--resume: no run to continue in {parent}; run without --resume to start")
    runs = [(variant, resumable[r]) for r, variant in variants.items()]
    sources = [
        run_source(
            recipe,
            [*overrides, *([f"method.regularizer={r}", f"out_dir={parent}", f"name={r}"] if compare else [])],
            command,
        )
        for r in variants
    ]
    with _trained_in_turn(runs, overwrite, verbose, sources) as trained:
        if not trained:  # not rank 0
            return {}
        summaries = dict(zip(variants, trained, strict=True))
        table = format_classifiers(summaries)
        write_text(parent / "results.md", table + "\n")
    print(table)
    if attack:
        runs = [parent / r for r in variants] if compare else [parent]
        from ssl_coded.attacks import attack_runs

        attack_runs(runs, parent)
    print(f"run directory: {parent}")
    return summaries


def _has_checkpoint(config: RecipeConfig) -> bool:
    from ssl_coded.training.loop import run_dir

    return (run_dir(config) / "checkpoints" / "last.ckpt").is_file()


def run_source(recipe: str, overrides: list[str], command: list[str] | None) -> dict[str, Any]:
    """What run.json records of how a run was asked for: the recipe (name, file, hash), overrides, command."""
    from ssl_coded.provenance import recipe_source
    from ssl_coded.training.config import recipe_dir, resolve_recipe

    path = resolve_recipe(recipe)
    bundled = path.resolve().parent == recipe_dir().resolve()
    return {"recipe": recipe_source(recipe, path, bundled), "overrides": list(overrides), "command": command}


@contextmanager
def _trained_in_turn(
    runs: list[tuple[RecipeConfig, bool]],
    overwrite: bool,
    verbose: bool,
    sources: list[dict[str, Any]] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Lock and check every run (config, resume) before any trains, so that a refusal leaves all of them
    as they were; then train them one after the other (a finished run's summary is read, not retrained).
    Yields the summaries while the runs are still locked ([] on a DDP rank other than 0)."""
    from ssl_coded.training.loop import check_run_dir, pretrain, run_dir

    with ExitStack() as claimed:
        for config, resume in runs:
            claimed.enter_context(RunLock(run_dir(config))).clean_litter()
            check_run_dir(config, resume, overwrite)
        summaries = [
            pretrain(config, resume=resume, overwrite=overwrite, verbose=verbose, source=source)
            for (config, resume), source in zip(runs, sources or [None] * len(runs), strict=True)
        ]
        yield summaries if all(summaries) else []


def format_classifiers(summaries: dict[str, dict[str, Any]]) -> str:
    head = ["regularizer", "test accuracy", "train accuracy", "best val accuracy", "train s"]
    rows = [
        [
            name,
            f"{s['test_accuracy']:.4f}",
            f"{s['train_accuracy']:.4f}" if "train_accuracy" in s else "-",  # summaries before it was recorded
            f"{s['best_val_accuracy']:.4f}",
            f"{s['seconds']:.0f}",
        ]
        for name, s in summaries.items()
    ]
    return markdown_table(head, rows)
