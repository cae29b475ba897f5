"""A run directory's life as a transaction: one writer at a time, litter of killed runs cleaned, an
`--overwrite` that never loses the old run before the new one has started, interrupts that end in one line.

The lock of `runs/<name>/` is a file beside it, `runs/.<name>.lock`, held with `fcntl.flock` for the
life of the command: the kernel releases it when the process dies, however it dies, so a lock is never
stale. A writer (pretraining, training) holds it exclusively and a second writer is refused at once,
naming the holder's pid; readers that write results into the directory (evaluation) hold it shared, so
several may run at once, and merge their results under a second, short exclusive lock. A writer removes
the lock file as it ends (a process that locked the removed file sees that and locks the current one),
so that a refused or finished command leaves nothing beside the run; so does the last reader.

Replacing a run (`--overwrite`) renames the old directory to `<name>.replaced-<time>` just before the
new run writes its first file, and deletes it once the new run has its first checkpoint. A command
that finds such a directory (its replacing run was killed) settles it under the lock: the new run is
kept if it reached a checkpoint, else the old one is put back.

Example:
    >>> with RunLock(Path("runs/demo")) as lock:
    ...     lock.clean_litter()
    ...     train()
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO


class RunBusyError(ValueError):
    """Another process is writing the run directory; the message names it and what to do."""


class RunInterrupted(BaseException):  # like KeyboardInterrupt: not an error
    """SIGINT or SIGTERM arrived; a BaseException so that no `except Exception` on the way swallows it.

    Attributes:
        signum: the signal; the command exits with 128 + signum (130 for SIGINT, 143 for SIGTERM).
        where: what was kept and how to go on, added by the layers it passes through.
    """

    def __init__(self, signum: int, where: str = "") -> None:
        super().__init__(signum, where)
        self.signum = signum
        self.where = where

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def message(self) -> str:
        name = signal.Signals(self.signum).name
        return f"interrupted ({name}){'; ' + self.where if self.where else ''}"


@contextmanager
def interruptible() -> Iterator[None]:
    """Inside, SIGINT and SIGTERM raise `RunInterrupted` in the main thread (instead of KeyboardInterrupt,
    which Lightning turns into a silent exit status 1, and instead of SIGTERM's death without clean-up),
    so that `finally` blocks and temporary-file clean-up run and the command ends with one line."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise RunInterrupted(signum)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for sig in previous:
            signal.signal(sig, handler)
    except ValueError:  # not the main thread (e.g. a test runner's worker): signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def launched_rank() -> bool:
    """Whether this process is a rank other than 0 that a distributed launcher started (Lightning sets these
    variables): the copies of the command that rank 0's lock already covers."""
    return any(os.environ.get(name, "0") != "0" for name in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def lock_path(run_dir: Path) -> Path:
    """The lock file of a run directory: beside it, so that it survives the directory being moved aside."""
    return run_dir.parent / f".{run_dir.name}.lock"


def _flock(handle: IO[str], operation: int) -> bool:
    try:
        fcntl.flock(handle, operation | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


_HELD: dict[str, tuple[int, str]] = {}  # lock files this process holds: (depth, kind)


class RunLock:
    """The advisory lock of one run directory, held for a command's life (see the module's docstring).

    Args:
        run_dir: the run directory (it need not exist yet; its parent is created).
        shared: a reader that writes results into the directory (evaluation) rather than a trainer.
    """

    def __init__(self, run_dir: str | Path, shared: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.shared = shared
        self._handle: IO[str] | None = None
        self._nested = False

    def __enter__(self) -> RunLock:
        if launched_rank():
            self._nested = True
            return self
        path = lock_path(self.run_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = str(path.resolve())
        if key in _HELD:  # this process holds it already (e.g. --compare claims every run first): re-entrant
            if self.shared or _HELD[key][1] == "exclusive":
                _HELD[key] = (_HELD[key][0] + 1, _HELD[key][1])
                self._nested = True
                return self
            raise RunBusyError(f"{self.run_dir} is being evaluated by this process; train it in another command")
        while True:
            handle = path.open("a+")
            if not self._acquire(handle, path):
                holder = _holder(handle)
                handle.close()
                what = "being trained" if self.shared else "in use"
                raise RunBusyError(
                    f"{self.run_dir} is {what} by another ssl-coded process{holder}; wait for it to end, "
                    "or use another name=... (or --out)"
                )
            if _same_file(handle, path):
                break
            handle.close()  # its writer ended and removed this lock file meanwhile: lock the current one
        if not self.shared:  # the holder's pid, for the refusal of the next one
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {' '.join(sys.argv[:3])}\n")
            handle.flush()
        self._handle = handle
        _HELD[key] = (1, "shared" if self.shared else "exclusive")
        return self

    def __exit__(self, *exc: object) -> None:
        if launched_rank():
            return
        path = lock_path(self.run_dir)
        key = str(path.resolve())
        count, kind = _HELD.pop(key, (1, ""))
        if count > 1:
            _HELD[key] = (count - 1, kind)
        if self._handle is not None and not self._nested:
            # the last holder removes the lock file (a reader only when no other reader holds it); a process
            # that locked it meanwhile sees it gone and locks the current one
            last = not self.shared or _flock(self._handle, fcntl.LOCK_EX)
            if last and _same_file(self._handle, path):
                path.unlink()
            self._handle.close()  # closing releases the flock
            self._handle = None

    def _acquire(self, handle: IO[str], path: Path) -> bool:
        if not self.shared:
            return _flock(handle, fcntl.LOCK_EX)
        # a reader: exclusive for a moment first, then no writer is alive and its litter can go
        if _flock(handle, fcntl.LOCK_EX) and _same_file(handle, path):
            self._handle = handle
            self.clean_litter()
        return _shared(handle)

    def clean_litter(self) -> list[Path]:
        """Remove what killed writers left: temporary files of atomic writes, and settle a replaced run.
        Call only while holding the lock exclusively (a live writer's temporary files are its own)."""
        removed: list[Path] = []
        if self._nested:  # the outer holder has cleaned
            return removed
        if self.run_dir.is_dir():
            for tmp in self.run_dir.rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        settle_replaced(self.run_dir)
        return removed


@contextmanager
def results_lock(out_dir: Path) -> Iterator[None]:
    """A short exclusive lock around the read-modify-write of `out_dir`'s results files (blocking: the
    other holder is a reader merging its rows, a matter of milliseconds)."""
    path = out_dir / ".results.lock"  # inside: the folder holds the results it guards, nothing is left outside
    out_dir.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _shared(handle: IO[str], patience: float = 2.0) -> bool:
    """A shared lock, waiting out another reader's moment of exclusivity (its litter clean-up, milliseconds);
    a writer holds it for its whole run, so one still there after `patience` seconds is a writer."""
    deadline = time.monotonic() + patience
    while not _flock(handle, fcntl.LOCK_SH):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _same_file(handle: IO[str], path: Path) -> bool:
    """Whether the locked file is still the one at `path` (a writer removes its lock file as it ends)."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def _holder(handle: IO[str]) -> str:
    handle.seek(0)
    words = handle.read().split()
    return f" (pid {words[0]}: {' '.join(words[1:])})" if words and words[0].isdigit() else ""


# --- replacing a run (--overwrite) -----------------------------------------------------------------

RUN_FILES = ("config.yaml", "checkpoints", "logs", "summary.json", "results.json", "metrics.csv", "run.json", "mlruns")


def looks_like_run(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_FILES)


def started(run_dir: Path) -> bool:
    """Whether a run has anything to lose: a checkpoint, a summary or evaluation results."""
    return any((run_dir / name).exists() for name in ("checkpoints/last.ckpt", "summary.json", "results.json"))


def false_start(run_dir: Path) -> bool:
    """A run killed before its first checkpoint: its config and logs, nothing that could be resumed or read."""
    return run_dir.is_dir() and looks_like_run(run_dir) and not started(run_dir)


def run_status(run_dir: Path) -> str:
    """The run state, from what the directory holds (the one way to tell): `replaced` (moved aside by
    --overwrite), `running` (a trainer holds its lock), `finished` (its summary), `failed` (no summary, and
    run.json says its last session ended with an error), `interrupted` (a checkpoint to resume, no summary), or
    `not started` (stopped before its first checkpoint)."""
    if ".replaced-" in run_dir.name:
        return "replaced"
    if trained_now(run_dir):
        return "running"
    if (run_dir / "summary.json").is_file():
        return "finished"
    if _last_session_failed(run_dir):  # an error, not a signal: resuming would meet it again
        return "failed"
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return "interrupted"
    return "not started"


def _last_session_failed(run_dir: Path) -> bool:
    """Whether run.json says the run's last session ended with an error (`ssl_coded.provenance`)."""
    import json

    try:
        sessions = json.loads((run_dir / "run.json").read_text()).get("sessions") or [{}]
    except (OSError, ValueError, AttributeError):
        return False
    return bool(sessions[-1].get("how") == "failed")


def trained_now(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock exclusively (a trainer; evaluations share it)."""
    path = lock_path(run_dir)
    if not path.is_file():
        return False
    with path.open("a+") as handle:
        if not _flock(handle, fcntl.LOCK_SH):
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def move_aside(run_dir: Path) -> Path:
    """Rename the run directory to `<name>.replaced-<time>` (deleted by `forget_replaced`)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = run_dir.with_name(f"{run_dir.name}.replaced-{stamp}")
    n = 1
    while aside.exists():
        aside = run_dir.with_name(f"{run_dir.name}.replaced-{stamp}-{n}")
        n += 1
    run_dir.rename(aside)
    return aside


def replaced_of(run_dir: Path) -> list[Path]:
    return sorted(run_dir.parent.glob(f"{run_dir.name}.replaced-*")) if run_dir.parent.is_dir() else []


def forget_replaced(run_dir: Path) -> None:
    """The replacing run has started: the runs it replaced go."""
    for old in replaced_of(run_dir):
        shutil.rmtree(old, ignore_errors=True)


def settle_replaced(run_dir: Path) -> str:
    """A replacing run that was killed: keep it if it started (its replaced run goes), else restore the old one.
    Returns a line saying what was done ("" if nothing)."""
    olds = replaced_of(run_dir)
    if not olds:
        return ""
    if run_dir.is_dir() and started(run_dir):
        forget_replaced(run_dir)
        return ""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    olds[-1].rename(run_dir)
    for extra in olds[:-1]:
        shutil.rmtree(extra, ignore_errors=True)
    message = f"{run_dir}: the run that was to replace it was interrupted before its first checkpoint; restored"
    print(f"ssl-coded: note: {message}", file=sys.stderr)
    return message
