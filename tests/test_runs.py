"""`ssl-coded runs`: every run directory with its status from the run state, and one table of results."""

import json
import shutil

import pytest

from ssl_coded.cli import main

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={root}", "name=done", "coded.enabled=true"]) == 0
    assert main(["eval", "knn", str(root / "done"), "--no-floors"]) == 0
    shutil.copytree(root / "done", root / "stopped")
    (root / "stopped" / "summary.json").unlink()  # a checkpoint, no summary: interrupted
    (root / "early").mkdir()
    shutil.copy(root / "done" / "config.yaml", root / "early" / "config.yaml")  # stopped before a checkpoint
    shutil.copytree(root / "done", root / "nested" / "old.replaced-20261207-010101")
    shutil.copytree(root / "stopped", root / "broken")  # its last session ended with an error
    record = json.loads((root / "broken" / "run.json").read_text())
    record["sessions"][-1]["how"] = "failed"
    (root / "broken" / "run.json").write_text(json.dumps(record))
    return root


def lines_of(out):
    return {line.split(" | ")[0].removeprefix("| ").rsplit("/", 1)[-1]: line for line in out.splitlines()[2:]}


def test_every_run_is_listed_with_its_status(runs, capsys):
    assert main(["runs", str(runs)]) == 0
    lines = lines_of(capsys.readouterr().out)
    assert set(lines) == {"done", "stopped", "early", "broken", "old.replaced-20261207-010101"}
    assert "| failed |" in lines["broken"]
    assert "| finished |" in lines["done"] and "| interrupted |" in lines["stopped"]
    assert "| not started |" in lines["early"] and "| replaced |" in lines["old.replaced-20261207-010101"]
    assert "| simclr-digits | simclr | on |" in lines["done"] and "knn (" in lines["done"]


def test_a_run_whose_lock_a_trainer_holds_is_running(runs):
    from ssl_coded.rundir import RunLock, run_status

    with RunLock(runs / "stopped"):
        assert run_status(runs / "stopped") == "running"
    assert run_status(runs / "stopped") == "interrupted"
    with RunLock(runs / "done", shared=True):  # an evaluation shares the lock: still finished
        assert run_status(runs / "done") == "finished"


def test_one_table_of_the_results_and_its_csv(runs, tmp_path, capsys):
    csv = tmp_path / "all.csv"
    assert main(["runs", str(runs / "done"), str(runs / "stopped"), "--table", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "knn_instdisc_top1" in out.splitlines()[0] and len(out.splitlines()) == 4  # two runs' encoder rows
    assert csv.read_text().splitlines()[0].startswith("run,row,") and len(csv.read_text().splitlines()) == 3
    assert main(["runs", str(runs / "done"), "--table", "--csv", str(csv)]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err
    assert main(["runs", str(tmp_path / "empty")]) == 2
