"""Pretraining with PyTorch Lightning: run directory, checkpoints, metrics, plots, resume.

A run directory `out_dir/name/` holds:
    config.yaml          the resolved recipe (every default filled in)
    checkpoints/         last.ckpt, and best.ckpt by validation kNN top-1 (written atomically)
    metrics.csv          Lightning's CSV log (per step and per epoch)
    curves.png           training loss and validation kNN top-1 per epoch
    summary.json         test kNN (both presets) of the best checkpoint beside the raw-pixel and
                         random-init floors, wall time, epochs

Example:
    >>> summary = pretrain(load_config("simclr-digits"))
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from ssl_coded.data import load_splits
from ssl_coded.data.fingerprint import fingerprint
from ssl_coded.io import write_json, write_text
from ssl_coded.provenance import end_session, read_run_record, start_session
from ssl_coded.results import SCHEMA_VERSION
from ssl_coded.rundir import RunInterrupted, RunLock, false_start, launched_rank, looks_like_run, move_aside, started
from ssl_coded.training.checkpoints import AtomicCheckpointIO, CheckpointError, RecipeCheckpoint, load_checkpoint_file
from ssl_coded.training.config import ConfigError, RecipeConfig, parse_yaml, to_yaml
from ssl_coded.training.curves import write_curves
from ssl_coded.training.data_module import SplitsDataModule
from ssl_coded.training.methods import build_method
from ssl_coded.training.metrics_log import merge_metrics
from ssl_coded.training.precision import FALLBACK_WARNING, training_precision
from ssl_coded.training.quiet import quiet_frameworks
from ssl_coded.training.summary import summarise


def run_dir(config: RecipeConfig) -> Path:
    return Path(config.out_dir) / config.name


def pretrain(
    config: RecipeConfig,
    resume: bool = False,
    callbacks: list[pl.Callback] | None = None,
    overwrite: bool = False,
    verbose: bool = False,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train from a recipe; returns the summary (also written to the run directory).

    The run directory is locked for the whole run (`ssl_coded.rundir.RunLock`); everything that can be
    checked is checked before anything in it changes (see docs/RELIABILITY.md).

    Args:
        config: the resolved recipe.
        resume: continue from `checkpoints/last.ckpt` of the run directory; a finished run is left as it is
            (its summary is returned) unless trainer.max_epochs was raised.
        callbacks: extra Lightning callbacks.
        overwrite: replace what an earlier run left in the run directory (otherwise refused). The old run
            is moved to `<name>.replaced-<time>` when the new one starts, and deleted once the new one has a
            checkpoint (put back if it is interrupted before).
        verbose: keep the framework's own messages and warnings.
        source: what run.json records of the command (`recipe`, `overrides`, `command`; `ssl_coded.provenance`).

    Raises:
        RunInterrupted: SIGINT / SIGTERM (inside `ssl_coded.rundir.interruptible`); `where` says what was kept.
    """
    out = run_dir(config)
    if launched_rank():  # rank 0 holds the lock and did the checks
        return _train(config, resume, callbacks, verbose, replace=False, source=source)
    with RunLock(out) as lock:
        lock.clean_litter()
        finished = check_run_dir(config, resume, overwrite)
        if finished is not None:
            print(f"ssl-coded: {out} already finished, left as it is; raise trainer.max_epochs to continue it")
            return finished
        return _train(config, resume, callbacks, verbose, replace=overwrite and not resume, source=source)


def _train(
    config: RecipeConfig,
    resume: bool,
    callbacks: list[pl.Callback] | None,
    verbose: bool,
    replace: bool,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out = run_dir(config)
    if config.trainer.threads:
        torch.set_num_threads(config.trainer.threads)
    asked = config.trainer.precision
    precision = training_precision(asked, config.trainer.accelerator)
    config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, precision=precision))
    pl.seed_everything(config.seed, workers=True, verbose=False)
    splits = load_splits(config.data)
    with quiet_frameworks(verbose):  # lightly's heads may warn about their own building blocks
        method = build_method(config, splits)

    checkpoint = RecipeCheckpoint(
        dirpath=out / "checkpoints", filename="best", monitor=method.monitor, mode="max", save_last=True
    )
    with quiet_frameworks(verbose):
        try:
            trainer = make_trainer(config, out, checkpoint, callbacks, verbose)
        except MisconfigurationException as error:
            raise ConfigError(f"trainer settings: {str(error).splitlines()[0]}") from error
        batches = check_training_batches(config, len(splits.train), trainer.world_size)
        # an epoch shorter than the logging interval would log no training loss at all
        trainer.log_every_n_steps = max(1, min(config.trainer.log_every_n_steps, batches))
        # every check passed: the run starts here, the first write into its directory
        replaced = _clear_for(out) if (replace or false_start(out)) and trainer.global_rank == 0 else None
        last = out / "checkpoints" / "last.ckpt"
        opened = False  # whether this process added a session to run.json (only that one is closed here)
        try:
            write_text(out / "config.yaml", to_yaml(config))
            if trainer.global_rank == 0:
                data = {"name": config.data.name, "fingerprint": fingerprint(config.data)}
                device, threads = str(trainer.strategy.root_device), torch.get_num_threads()
                record = start_session(
                    out, source=source, seed=config.seed, data=data, device=device, precision=precision, threads=threads
                )
                opened = True
                attach_mlflow(trainer, config, out, record)
            if precision != asked and trainer.global_rank == 0:  # once the run is sure to start
                print(FALLBACK_WARNING, file=sys.stderr)
            start = time.perf_counter()
            trainer.fit(method, datamodule=SplitsDataModule(splits, config), ckpt_path=str(last) if resume else None)
            seconds = time.perf_counter() - start
        except RunInterrupted as interrupted:
            interrupted.where = _interrupted_where(trainer, last)
            if opened:
                end_session(out, "interrupted")
            raise
        except BaseException:
            if opened:
                end_session(out, "failed")
            raise
        finally:
            if replaced is not None:
                _settle(out, replaced)
        if trainer.global_rank != 0:
            return {}
        try:
            return _finish(out, config, splits, method, checkpoint, seconds, precision, asked, source)
        except BaseException:
            end_session(out, "failed")
            raise


def _finish(
    out: Path,
    config: RecipeConfig,
    splits: Any,
    method: Any,
    checkpoint: ModelCheckpoint,
    seconds: float,
    precision: str,
    asked: str,
    source: dict[str, Any] | None,
) -> dict[str, Any]:
    """After training: the summary of the best checkpoint, the curves, and run.json's session closed."""
    merge_metrics(out)
    summary = summarise(config, splits, method, checkpoint, seconds) | {"precision": precision}
    summary["recipe"] = (source or {}).get("recipe", {}).get("name", config.name)  # the recipe, not the run's name
    summary["name"] = config.name
    summary["run_id"] = (read_run_record(out) or {}).get("run_id")
    summary["best_checkpoint"] = relative_to_run(summary["best_checkpoint"], out)
    if precision != asked:  # config.yaml holds what trained; the recipe asked for this
        summary["precision_asked"] = asked
    write_json(out / "summary.json", {"schema_version": SCHEMA_VERSION, **summary})
    write_curves(out)
    end_session(out, "finished")
    return summary


def attach_mlflow(trainer: pl.Trainer, config: RecipeConfig, out: Path, record: dict[str, Any]) -> None:
    """With trainer.logger=mlflow: an MLflow file store in the run's mlruns/ (experiment ssl-coded, one MLflow
    run per session) added to the trainer's loggers once the run has started (MLflow writes its store when a
    logger is made, so a refused run leaves none), with run.json's facts as parameters (the resolved recipe,
    the recipe's name and hash, overrides, data fingerprint) and tags (run id, command, versions, device)."""
    if config.trainer.logger != "mlflow":
        return
    from mlflow.tracking import MlflowClient
    from pytorch_lightning.loggers import MLFlowLogger

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this opt-in to a file store
    (out / "mlruns").mkdir(exist_ok=True)
    store = (out / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=store)
    if client.get_experiment_by_name("ssl-coded") is None:  # else Lightning warns as it makes it
        client.create_experiment("ssl-coded")
    logger = MLFlowLogger(experiment_name="ssl-coded", run_name=config.name, tracking_uri=store)
    trainer.loggers = [*trainer.loggers, logger]
    session = record["sessions"][-1]
    recipe = record.get("recipe") or {}
    logger.log_hyperparams(
        {
            **dataclasses.asdict(config),
            "recipe_name": recipe.get("name"),
            "recipe_sha256": recipe.get("sha256"),
            "overrides": " ".join(record.get("overrides") or []),
            "data_sha256": record["data"]["fingerprint"].get("sha256"),
        }
    )
    tags = {
        "ssl_coded.run_id": record["run_id"],
        "ssl_coded.command": " ".join(session["command"] or []),
        **{f"ssl_coded.{key}": value for key, value in session["code"].items()},
        **{f"version.{name}": value for name, value in session["versions"].items()},
        "device": session["device"],
        "precision": session["precision"],
        "threads": session["threads"],
    }
    for key, value in tags.items():
        logger.experiment.set_tag(logger.run_id, key, str(value))


def relative_to_run(path: str, out: Path) -> str:
    """A path inside the run directory, relative to it (a moved or copied run still points at its files)."""
    if not path:
        return path
    try:
        return Path(path).resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return path


def _clear_for(out: Path) -> Path | None:
    """Make room for a replacing run: a false start goes, an earlier run is moved aside (returned)."""
    if not out.exists():
        return None
    if false_start(out):  # its config and logs describe nothing that exists; its logs would mix with ours
        print(f"ssl-coded: note: {out} held a run stopped before its first checkpoint; started afresh", file=sys.stderr)
        shutil.rmtree(out)
        return None
    return move_aside(out)


def _settle(out: Path, replaced: Path) -> None:
    """After the replacing run ended or was interrupted: it keeps the name if it has a checkpoint, else the
    old run comes back."""
    if started(out):
        shutil.rmtree(replaced, ignore_errors=True)
    else:
        shutil.rmtree(out, ignore_errors=True)
        replaced.rename(out)


def _interrupted_where(trainer: pl.Trainer, last: Path) -> str:
    if not last.is_file():
        return f"at epoch {trainer.current_epoch}, before the first checkpoint: nothing to resume, run it again"
    epoch = load_checkpoint_file(last).get("epoch", "?")
    return f"at epoch {trainer.current_epoch}; {last} kept (end of epoch {epoch}); continue it with --resume"


def check_run_dir(config: RecipeConfig, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Refuse, before anything is written, to resume what is not there or what was trained otherwise, or
    to replace what is there without `overwrite`. Returns the summary of a finished run that `resume`
    would leave as it is (None: train).

    Only the launching process checks: under DDP, Lightning starts the other ranks as copies of the
    command once rank 0 runs, and they would find rank 0's files.
    """
    if launched_rank():
        return None
    out = run_dir(config)
    last = out / "checkpoints" / "last.ckpt"
    if resume:
        if not last.is_file():
            hint = "it never reached its first checkpoint; " if false_start(out) else ""
            raise CheckpointError(f"--resume: no checkpoint at {last}; {hint}run without --resume to start")
        checked = load_checkpoint_file(last)
        if checked.get("recipe_method") != config.method.name:
            raise CheckpointError(
                f"--resume: {last} was written by method {checked.get('recipe_method')!r}, not "
                f"{config.method.name!r}; use the recipe it came from or another run name"
            )
        stored = parse_yaml(checked["recipe_yaml"])
        if changed := resume_changes(stored, config):
            raise CheckpointError(
                f"--resume: {', '.join(changed)} differ from the run in {out}, which would train something else; "
                f"drop those overrides or start a new run (name=...); keys safe to change: {', '.join(SAFE_ON_RESUME)}"
            )
        summary = out / "summary.json"
        if summary.is_file() and config.trainer.max_epochs <= stored.trainer.max_epochs:
            finished: dict[str, Any] = json.loads(summary.read_text())
            return finished
    elif overwrite and out.exists() and not looks_like_run(out):
        raise CheckpointError(f"--overwrite: {out} does not look like a run directory; not replacing it")
    elif not overwrite and last.exists():
        raise CheckpointError(f"run directory {out} already has checkpoints; pass --resume, or set name=<new name>")
    elif not overwrite and out.is_dir() and any(out.iterdir()) and not false_start(out):
        raise CheckpointError(
            f"run directory {out} already holds an earlier run's files; set name=<new name>, or pass --overwrite"
        )
    return None


# what a resume may change: how long, how it is logged and where it computes, not what is trained
SAFE_ON_RESUME = (
    "trainer.max_epochs",
    "trainer.log_every_n_steps",
    "trainer.accelerator",
    "trainer.precision",
    "trainer.threads",
    "data.num_workers",
    "data.download",
    "data.stream",
    "data.memory_budget_mb",
    "eval.floors",
    "inference.*",
    "attack.*",
    "out_dir",
)


def resume_changes(stored: RecipeConfig, config: RecipeConfig) -> list[str]:
    """The keys (`section.key: old -> new`) whose change would make a resumed run train something else."""
    old, new = _flat(dataclasses.asdict(stored)), _flat(dataclasses.asdict(config))
    safe = {key for key in SAFE_ON_RESUME if not key.endswith("*")}
    sections = tuple(key[:-1] for key in SAFE_ON_RESUME if key.endswith("*"))
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key) and key not in safe and not key.startswith(sections)
    ]


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_training_batches(config: RecipeConfig, num_train: int, world_size: int = 1) -> int:
    """The training batches per epoch and device, refusing a run that would train on none.

    Each of `world_size` processes gets ceil(num_train / world_size) images (the distributed sampler
    pads), in batches of trainer.batch_size with the last partial batch dropped.
    """
    batch = config.trainer.batch_size
    per_device = -(-num_train // world_size)
    batches = per_device // batch  # the last partial batch is dropped
    limit = config.trainer.limit_train_batches
    batches = min(batches, int(limit)) if limit > 1 else int(batches * limit)
    if batches < 1:
        raise ConfigError(
            f"the train split has {num_train} images ({per_device} per device), too few for one batch of "
            f"trainer.batch_size={batch} at trainer.limit_train_batches={limit}: use a smaller batch or more data"
        )
    return batches


def loggers(config: RecipeConfig, out: Path) -> list[Logger]:
    """The CSV logger (logs/version_<n>/, one per (resumed) session; metrics.csv comes from it) and, with
    trainer.logger=tensorboard, TensorBoard's event files beside it in tensorboard/version_<n>/; with
    trainer.logger=mlflow, an MLflow file store (`attach_mlflow`, once the run starts)."""
    csv = CSVLogger(out, name="logs")
    if config.trainer.logger != "tensorboard":
        return [csv]
    from pytorch_lightning.loggers import TensorBoardLogger

    # the same version number as the CSV session, so a resumed run's two logs pair up
    return [csv, TensorBoardLogger(out, name="tensorboard", version=csv.version, default_hp_metric=False)]


def make_trainer(
    config: RecipeConfig,
    out: Path,
    checkpoint: ModelCheckpoint,
    callbacks: list[pl.Callback] | None,
    verbose: bool = False,
) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=config.trainer.max_epochs,
        accelerator=config.trainer.accelerator,
        devices=config.trainer.devices,
        num_nodes=config.trainer.num_nodes,
        strategy=config.trainer.strategy,
        precision=config.trainer.precision,
        limit_train_batches=config.trainer.limit_train_batches,
        log_every_n_steps=config.trainer.log_every_n_steps,
        check_val_every_n_epoch=config.eval.every_n_epochs,
        num_sanity_val_steps=0,
        logger=loggers(config, out),
        callbacks=[checkpoint, *(callbacks or [])],
        plugins=[AtomicCheckpointIO()],
        deterministic=False,
        enable_model_summary=False,
        enable_progress_bar=verbose or sys.stderr.isatty(),  # a bar on a terminal, not in CI logs
    )
