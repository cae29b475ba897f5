"""A run's life as a transaction: checks before writes, one writer, resume rules, interrupts in one line
(ssl_coded.training.loop with ssl_coded.rundir; docs/RELIABILITY.md lists what each test covers)."""

import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys

import pytest

from ssl_coded.cli import main
from ssl_coded.rundir import RunLock
from tests.console import SSL_CODED, one_line_error, run_cli

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]
SPAWN = multiprocessing.get_context("spawn")


def seed_of(config_yaml):
    return int(re.search(r"^seed: (\d+)$", config_yaml.read_text(), re.MULTILINE).group(1))


def snapshot(run):
    """Every file of a run directory and its bytes (the lock beside it is not in it)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


# --- flags that do what they say, refused before anything is written (fast) ----------------------------


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--regularizers", "noise"], "add --compare"),
        (["--compare", "--regularizers", ","], "--regularizers names none"),
        (["--resume"], "no run to continue"),
    ],
)
def test_train_flags_do_what_they_say_or_are_refused(tmp_path, capsys, flags, needle):
    assert main(["train", "supervised-digits", f"out_dir={tmp_path}", "name=x", *flags]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and needle in error[0]
    assert not (tmp_path / "x").exists()


# --- end to end ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished quick run and its files' bytes."""
    out = tmp_path_factory.mktemp("runs")
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={out}", "name=run"]) == 0
    return out / "run", snapshot(out / "run")


@pytest.mark.slow
def test_overwrite_refused_for_another_reason_keeps_the_old_run(finished, capsys):
    run, files = finished
    # too few images for one batch: found after the data is loaded, before anything is moved or written
    args = ["pretrain", "simclr-digits", *QUICK, "data.max_train=10", f"out_dir={run.parent}", "name=run"]
    assert main([*args, "--overwrite"]) == 2
    assert "too few for one batch" in capsys.readouterr().err
    assert snapshot(run) == files and not list(run.parent.glob("run.replaced-*"))


@pytest.mark.slow
def test_a_run_stopped_before_its_first_checkpoint_does_not_block_the_corrected_rerun(tmp_path, capsys):
    stopped = tmp_path / "run"  # what a run that failed in its first epoch leaves: its config and logs
    (stopped / "logs" / "version_0").mkdir(parents=True)
    (stopped / "config.yaml").write_text("seed: 7\n")
    (stopped / "logs" / "version_0" / "metrics.csv").write_text("epoch,step,train_loss\n0,0,nan\n")
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=run"]) == 0
    assert "stopped before its first checkpoint; started afresh" in capsys.readouterr().err
    assert seed_of(stopped / "config.yaml") == 0 and [p.name for p in (stopped / "logs").iterdir()] == ["version_0"]
    assert "nan" not in (stopped / "metrics.csv").read_text()


@pytest.mark.slow
def test_resume_of_a_finished_run_leaves_it_as_it_is(finished, capsys):
    run, files = finished
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={run.parent}", "name=run", "--resume"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert snapshot(run) == files


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["coded.enabled=true"], ["coded.enabled: False -> True"]),
        (["optim.lr=0.01", "model.width=16"], ["model.width: 32 -> 16", "optim.lr: 0.003 -> 0.01"]),
        (["data.max_train=500", "trainer.max_epochs=2"], ["data.max_train: 0 -> 500"]),
    ],
)
def test_resume_refuses_what_would_train_something_else_naming_each_key(finished, change, named):
    run, files = finished
    args = ["pretrain", "simclr-digits", *QUICK, f"out_dir={run.parent}", "name=run", *change, "--resume"]
    result = run_cli(*args, cwd=run.parent)
    one_line_error(result, *named, "keys safe to change: trainer.max_epochs")
    assert snapshot(run) == files  # config.yaml included


@pytest.mark.slow
def test_resume_with_more_epochs_continues_a_finished_run(tmp_path):
    args = ["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=run"]
    assert main(args) == 0
    assert main([*args, "trainer.max_epochs=2", "data.num_workers=0", "--resume"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 2


def _pretrain_after(barrier, args):
    barrier.wait(60)
    sys.exit(main(args))


@pytest.mark.slow
def test_two_pretrains_of_one_name_at_once_one_is_refused(tmp_path):
    barrier = SPAWN.Barrier(2)
    processes = [
        SPAWN.Process(
            target=_pretrain_after,
            args=(barrier, ["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=x", f"seed={seed}"]),
        )
        for seed in (0, 1)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(300)
    assert sorted(p.exitcode for p in processes) == [0, 2]
    winner = [0, 1][[p.exitcode for p in processes].index(0)]
    assert seed_of(tmp_path / "x" / "config.yaml") == winner
    assert json.loads((tmp_path / "x" / "summary.json").read_text())["rows"]
    assert sorted(p.name for p in (tmp_path / "x" / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


INTERRUPT_AT_STEP = """
import os, signal, sys
import pytorch_lightning as pl
import ssl_coded.training.loop as loop

class Interrupt(pl.Callback):  # the signal lands in the middle of epoch 1, after epoch 0's checkpoint
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == 3:
            os.kill(os.getpid(), int(os.environ["SIGNAL"]))

make_trainer = loop.make_trainer
loop.make_trainer = lambda config, out, checkpoint, callbacks, verbose: make_trainer(
    config, out, checkpoint, [*(callbacks or []), Interrupt()], verbose)
from ssl_coded.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_pretrain_says_what_it_kept_and_resumes(tmp_path, signum, status):
    args = ["pretrain", "simclr-digits", *QUICK, "trainer.max_epochs=3", f"out_dir={tmp_path}", "name=run"]
    env = {**os.environ, "SIGNAL": str(int(signum))}
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPT_AT_STEP, *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == status, result.stderr[-3000:]
    lines = [line for line in result.stderr.strip().splitlines() if "warning: kNN: k=200" not in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[0].startswith(f"ssl-coded: interrupted ({signum.name}); at epoch 1;")
    assert "last.ckpt kept (end of epoch 0)" in lines[0]
    assert lines[0].endswith(f"ssl-coded {' '.join(args)} --resume")
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / "run" / "summary.json").exists()
    assert main([*args, "--resume"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 3


# --- fault injection: SIGKILL at seeded random moments ------------------------------------------------


def killed_after(args, cwd, seconds):
    """Start `ssl-coded ARGS` and SIGKILL it after `seconds` (if it has not ended): its exit status."""
    process = subprocess.Popen([SSL_CODED, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def settled(run):
    """What the next command sees: the state after it takes the lock (litter cleaned, a replacement settled)."""
    with RunLock(run) as lock:
        lock.clean_litter()
    assert not list(run.parent.rglob("*.tmp")) and not list(run.parent.glob("run.replaced-*"))
    return snapshot(run)


@pytest.mark.slow
@pytest.mark.parametrize("kill_seed", [0, 1, 2, 3])
def test_a_replacing_pretrain_killed_anywhere_leaves_the_old_run_or_a_resumable_new_one(finished, tmp_path, kill_seed):
    run, old = finished
    run = shutil.copytree(run, tmp_path / "run")
    new = ["pretrain", "simclr-digits", *QUICK, "trainer.max_epochs=3", f"out_dir={tmp_path}", "name=run", "seed=1"]
    killed_after([*new, "--overwrite"], tmp_path, random.Random(kill_seed).uniform(1.0, 12.0))
    files = settled(run)
    if seed_of(run / "config.yaml") == 0:
        assert files == old  # the old run, byte for byte
        assert run_cli(*new, "--overwrite", cwd=tmp_path).returncode == 0
    else:  # the new run: resumable or finished, never a mix
        assert "checkpoints/last.ckpt" in files
        assert not any(name in files and files[name] == old[name] for name in ("checkpoints/last.ckpt", "summary.json"))
        assert run_cli(*new, "--resume", cwd=tmp_path).returncode == 0
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3
    assert seed_of(run / "config.yaml") == 1


@pytest.mark.slow
@pytest.mark.parametrize("kill_seed", [0, 1, 2])
def test_an_evaluation_killed_anywhere_leaves_readable_results_and_runs_again(finished, tmp_path, kill_seed):
    run, _ = finished
    run = shutil.copytree(run, tmp_path / "run")
    evaluate = ["eval", "knn", str(run), "--device", "cpu"]
    assert run_cli("eval", "knn", str(run), "--device", "cpu", "--no-floors", cwd=tmp_path).returncode == 0
    before = json.loads((run / "results.json").read_text())
    killed_after(evaluate, tmp_path, random.Random(kill_seed).uniform(1.0, 8.0))
    settled(run)
    after = json.loads((run / "results.json").read_text())  # the old results or the merged new ones
    assert after == before or set(after["rows"]) == {"encoder", "random init", "raw pixels"}
    assert run_cli(*evaluate, cwd=tmp_path).returncode == 0
    rows = json.loads((run / "results.json").read_text())["rows"]
    assert set(rows) == {"encoder", "random init", "raw pixels"} and "knn_dino_top1" in rows["raw pixels"]
