"""Many run directories at a glance: `ssl-coded runs [DIR ...]` lists them, `--table` builds one table of
their evaluations.

A run directory is a folder with a config.yaml (pretraining or supervised); its status is the run state's
(`ssl_coded.rundir.run_status`), its facts come from config.yaml, summary.json, run.json and results.json.

Example:
    >>> for run in find_runs([Path("runs")]):
    ...     print(describe(run))
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ssl_coded.errors import ConfigError
from ssl_coded.provenance import read_run_record
from ssl_coded.rundir import run_status
from ssl_coded.tables import markdown_table


def find_runs(folders: Iterable[Path]) -> Iterator[Path]:
    """Run directories under `folders` (or the folders themselves), in sorted order; a run's own subfolders
    (checkpoints, an export) are not searched."""
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"{folder} is not a folder; give folders that hold run directories (e.g. runs/)")
        if (folder / "config.yaml").is_file():
            yield folder
            continue
        for child in sorted(p for p in folder.iterdir() if p.is_dir()):
            yield from find_runs([child])


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def describe(run: Path) -> dict[str, Any]:
    """One run's line: name, recipe, method, coded, status, epochs, best validation metric, last evaluation."""
    summary, results = _json(run / "summary.json"), _json(run / "results.json")
    record = read_run_record(run) or {}
    config = _config(run)
    method = config.get("method", {}).get("name")
    coded = bool(config.get("coded", {}).get("enabled")) or config.get("method", {}).get("regularizer") == "coded"
    best = next(((k, v) for k, v in summary.items() if k.startswith("best_") and k != "best_checkpoint"), None)
    return {
        "run": str(run),
        "recipe": (record.get("recipe") or {}).get("name") or summary.get("recipe") or "?",
        "method": method or "?",
        "coded": "on" if coded else "off",
        "status": run_status(run),
        "epochs": config.get("trainer", {}).get("max_epochs"),
        "best": f"{best[0].removeprefix('best_')} {best[1]:.4f}" if best and best[1] is not None else "-",
        "evaluated": ", ".join(results.get("protocols", [])) + (f" ({results['made']})" if "made" in results else ""),
        "run_id": record.get("run_id") or summary.get("run_id") or "-",
    }


def _config(run: Path) -> dict[str, Any]:
    try:
        import yaml  # PyYAML comes with the [train] extra's OmegaConf, which wrote the file
    except ImportError:
        return {}
    try:
        loaded = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def list_table(runs: list[Path]) -> str:
    """One line per run."""
    head = ["run", "recipe", "method", "coded", "status", "epochs", "best validation", "evaluated", "run id"]
    rows = [[str(v if v is not None else "-") for v in describe(run).values()] for run in runs]
    return markdown_table(head, rows)


def results_table(runs: list[Path]) -> tuple[str, str]:
    """(markdown, CSV) of every run's evaluated rows (encoder and floors), one column per metric."""
    rows: list[tuple[str, str, dict[str, float]]] = []
    for run in runs:
        results = _json(run / "results.json")
        for name, metrics in results.get("rows", {}).items():
            rows.append((str(run), name, {k: v for k, v in metrics.items() if isinstance(v, int | float)}))
    if not rows:
        raise ConfigError("none of these runs has results.json; evaluate them first (`ssl-coded eval all RUN`)")
    metrics = sorted({key for _, _, values in rows for key in values})
    cells = [[run, name, *(f"{values[m]:.4f}" if m in values else "-" for m in metrics)] for run, name, values in rows]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([["run", "row", *metrics], *cells])  # quoted where needed
    return markdown_table(["run", "row", *metrics], cells), text.getvalue()
