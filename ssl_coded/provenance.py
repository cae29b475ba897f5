"""What made a run: `run.json`, the record each run directory keeps of its command, code, libraries and data.

One record per run directory, written when training starts (after every check passed, beside config.yaml)
and completed when it ends; a resume adds a session. It records, never decides: whether a run is finished
stays the run state's (`ssl_coded.rundir.run_status`), and no version in it is part of a key that decides
whether earlier results are kept.

    run_id       cited by the results rows evaluated from this run
    recipe       its name, the path of a recipe file that is not bundled, the SHA-256 of its text
    overrides    the key=value overrides as given; seed
    data         the data section's name and the fingerprint of its content (`ssl_coded.data.fingerprint`)
    sessions     per start or resume: command, ssl-coded version and git commit (dirty flag) when run from a
                 checkout, library versions, device, precision, threads, started, ended and how it ended

Example:
    >>> record = read_run_record(Path("runs/simclr-digits"))
    >>> record["run_id"], record["sessions"][-1]["how"]
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from ssl_coded.io import file_sha256, write_json
from ssl_coded.results import SCHEMA_VERSION

RUN_RECORD = "run.json"
LIBRARIES = ("torch", "torchvision", "numpy", "lightly", "pytorch-lightning", "faiss-cpu", "scikit-learn")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def versions() -> dict[str, str | None]:
    """Python's version and the installed versions of the libraries behind the numbers (None: not installed)."""
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def code_version() -> dict[str, Any]:
    """ssl-coded's version, and where it runs from a git checkout, its commit and whether it has changes."""
    try:
        version: str | None = metadata.version("ssl-coded")
    except metadata.PackageNotFoundError:
        version = None
    checkout = Path(__file__).resolve().parent.parent
    commit = _git(checkout, "rev-parse", "HEAD")
    dirty = None if commit is None else bool(_git(checkout, "status", "--porcelain", "--untracked-files=no"))
    return {"ssl_coded": version, "git_commit": commit, "git_dirty": dirty}


def _git(folder: Path, *args: str) -> str | None:
    if not (folder / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def recipe_source(recipe: str, path: Path, bundled: bool) -> dict[str, Any]:
    """A recipe as given: its name, the path of a file of the user's (a bundled one moves with the install),
    and the SHA-256 of its text."""
    return {"name": path.stem, "path": None if bundled else str(path), "sha256": file_sha256(path), "given": recipe}


def read_run_record(run_dir: Path) -> dict[str, Any] | None:
    """The run's run.json (None: a run from before it was written, or not a run)."""
    path = run_dir / RUN_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def start_session(
    run_dir: Path,
    *,
    source: dict[str, Any] | None,
    seed: int,
    data: dict[str, Any],
    device: str,
    precision: str,
    threads: int,
) -> dict[str, Any]:
    """Write run.json for a run that starts now (a new record, or a session added to a resumed run's)."""
    record = read_run_record(run_dir) or {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}",
        "recipe": (source or {}).get("recipe"),
        "overrides": (source or {}).get("overrides"),
        "seed": seed,
        "data": data,
        "sessions": [],
    }
    record["sessions"].append(
        {
            "command": (source or {}).get("command"),
            "code": code_version(),
            "versions": versions(),
            "device": device,
            "precision": precision,
            "threads": threads,
            "started": now(),
            "ended": None,
            "how": "running",
        }
    )
    write_json(run_dir / RUN_RECORD, record)
    return record


def end_session(run_dir: Path, how: str) -> None:
    """Complete the last session of run.json: `finished`, `interrupted` or `failed`, and when."""
    record = read_run_record(run_dir)
    if record is None or not record["sessions"]:
        return
    record["sessions"][-1].update(ended=now(), how=how)
    write_json(run_dir / RUN_RECORD, record)
