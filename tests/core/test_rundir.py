"""One writer per run directory, evaluations merged without losing rows, litter of killed writers cleaned,
a replaced run settled (ssl_coded.rundir). Concurrency is arranged with barriers and events, never sleeps."""

import multiprocessing
import os
import signal

import pytest

from ssl_coded.rundir import RunBusyError, RunInterrupted, RunLock, interruptible, move_aside, settle_replaced

SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: no fork of torch's threads


def _hold(run_dir, held, release):
    with RunLock(run_dir):
        held.set()
        release.wait(60)


@pytest.mark.slow  # spawns interpreters
def test_a_second_writer_is_refused_naming_the_holders_pid(tmp_path):
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=_hold, args=(tmp_path / "run", held, release))
    holder.start()
    try:
        assert held.wait(60)
        with pytest.raises(RunBusyError, match=rf"pid {holder.pid}\b.*another name=") as refused:
            RunLock(tmp_path / "run").__enter__()
        assert len(str(refused.value).splitlines()) == 1
        with pytest.raises(RunBusyError, match="being trained"):  # an evaluation waits for no trainer either
            RunLock(tmp_path / "run", shared=True).__enter__()
    finally:
        release.set()
        holder.join(60)
    with RunLock(tmp_path / "run"):  # released when its holder ended
        pass
    assert not any(tmp_path.iterdir())  # the lock lives beside the run, and its last writer removed it


@pytest.mark.slow  # spawns interpreters
def test_the_lock_dies_with_its_process(tmp_path):
    held, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=_hold, args=(tmp_path / "run", held, release))
    holder.start()
    assert held.wait(60)
    os.kill(holder.pid, signal.SIGKILL)  # no clean-up at all: the kernel drops the flock
    holder.join(60)
    with RunLock(tmp_path / "run"):
        pass


def test_a_process_may_claim_a_run_twice_and_evaluate_what_it_trains(tmp_path):
    with RunLock(tmp_path / "run"), RunLock(tmp_path / "run"), RunLock(tmp_path / "run", shared=True):
        pass
    with RunLock(tmp_path / "run"):  # every level released
        pass
    assert not any(tmp_path.iterdir())  # a writer leaves no lock file behind


def test_litter_of_killed_writers_is_cleaned_by_the_next_writer(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"kept")
    litter = [run / "checkpoints" / ".last.ckpt.abc.tmp", run / "features" / ".test-1.features.npy.x.tmp"]
    for path in litter:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    with RunLock(run) as lock:
        assert sorted(lock.clean_litter()) == sorted(litter)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"kept" and not any(p.exists() for p in litter)


def _make_run(path, marker, checkpoint):
    (path / "logs").mkdir(parents=True)
    (path / "config.yaml").write_text(marker)
    if checkpoint:
        (path / "checkpoints").mkdir()
        (path / "checkpoints" / "last.ckpt").write_text(marker)


@pytest.mark.parametrize("new_started", [False, True])
def test_a_killed_replacement_is_settled(tmp_path, new_started):
    """--overwrite killed midway: the new run keeps the name if it reached a checkpoint, else the old comes back."""
    run = tmp_path / "run"
    _make_run(run, "old", checkpoint=True)
    aside = move_aside(run)
    _make_run(run, "new", checkpoint=new_started)
    settle_replaced(run)
    assert (run / "config.yaml").read_text() == ("new" if new_started else "old")
    assert not aside.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_raise_run_interrupted_with_the_shells_exit_status(signum, status):
    with pytest.raises(RunInterrupted) as interrupted, interruptible():
        os.kill(os.getpid(), signum)
        for _ in range(10**7):  # the handler runs between bytecodes
            pass
    assert interrupted.value.exit_status == status
    assert interrupted.value.message().startswith(f"interrupted ({signal.Signals(signum).name})")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
