"""Atomic writes: a result file is either the old one or the complete new one, never half."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


class OutputError(OSError):
    """A result could not be written (a read-only or full location); the message names the path and the fix."""


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it onto `path`.

    Raises:
        OutputError: the location is not writable or the disk is full; `path` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _output_error(path, error) from error
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results should read like any written file
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        Path(tmp).unlink(missing_ok=True)
        # torch.save reports a full disk as a RuntimeError of its zip writer
        if isinstance(error, OSError) or "PytorchStreamWriter" in str(error) or "inline_container" in str(error):
            raise _output_error(path, error) from error
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _output_error(path: Path, error: BaseException) -> OutputError:
    reason = getattr(error, "strerror", None) or str(error).splitlines()[0][:160]
    return OutputError(f"cannot write {path}: {reason}; free some space or choose another location (out_dir=...)")


def write_text(path: str | Path, text: str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    atomic_write(path, write)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, read in chunks (a file larger than memory is never loaded whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
