"""run.json: what made a run, its id cited by results, and a run directory that still works once moved."""

import hashlib
import json
import shutil

import pytest

from ssl_coded.cli import main
from ssl_coded.data.config import DataConfig
from ssl_coded.data.fingerprint import fingerprint

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]


def test_run_json_names_the_recipe_the_overrides_and_the_versions(tmp_path):
    command = ["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=x"]
    assert main(command) == 0
    run = tmp_path / "x"
    record = json.loads((run / "run.json").read_text())
    assert record["schema_version"] == 1 and record["recipe"]["name"] == "simclr-digits"
    assert record["recipe"]["path"] is None  # bundled: its text's hash, not a path that moves with the install
    assert record["overrides"] == command[2:]
    session = record["sessions"][0]
    assert session["command"] == ["ssl-coded", *command] and session["how"] == "finished"
    assert session["versions"]["torch"] and session["versions"]["pytorch-lightning"] and session["threads"] >= 1
    assert record["data"]["name"] == "digits" and len(record["data"]["fingerprint"]["sha256"]) == 64
    summary = json.loads((run / "summary.json").read_text())
    assert summary["recipe"] == "simclr-digits" and summary["name"] == "x"  # not the run's name any more
    assert summary["run_id"] == record["run_id"] and summary["best_checkpoint"] == "checkpoints/best.ckpt"
    assert main(["eval", "knn", str(run), "--no-floors"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["run_id"] == record["run_id"]  # the rows cite the run
    assert summary["schema_version"] == results["schema_version"] == 1


@pytest.mark.slow
def test_a_copied_run_evaluates_exports_and_resumes_where_it_lies(tmp_path, capsys):
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path / 'a'}", "name=x"]) == 0
    copy = tmp_path / "b" / "x"
    shutil.copytree(tmp_path / "a" / "x", copy)
    shutil.rmtree(tmp_path / "a")  # nothing left where it was trained
    assert main(["eval", "knn", str(copy), "--no-floors"]) == 0
    assert main(["export", str(copy)]) == 0 and (copy / "export" / "encoder.json").is_file()
    resumed = ["pretrain", "simclr-digits", *QUICK, "trainer.max_epochs=2", f"out_dir={tmp_path / 'b'}", "name=x"]
    assert main([*resumed, "--resume"]) == 0
    record = json.loads((copy / "run.json").read_text())
    assert [s["how"] for s in record["sessions"]] == ["finished", "finished"]
    assert json.loads((copy / "summary.json").read_text())["epochs"] == 2


def test_the_fingerprint_is_the_content_not_where_or_when(tmp_path):
    first = tmp_path / "one"
    for name, payload in (("train/a/1.png", b"abc"), ("train/b/2.png", b"defg"), ("test/a/3.png", b"h")):
        (first / name).parent.mkdir(parents=True, exist_ok=True)
        (first / name).write_bytes(payload)
    second = tmp_path / "elsewhere" / "two"
    shutil.copytree(first, second)
    for path in second.rglob("*.png"):
        path.touch()  # other times
    one = fingerprint(DataConfig(name="imagefolder", root=str(first)))
    assert one == fingerprint(DataConfig(name="imagefolder", root=str(second)))
    lines = sorted(["train/a/1.png 3", "train/b/2.png 4", "test/a/3.png 1"])  # the documented form, by hand
    assert one["sha256"] == hashlib.sha256("\n".join(lines).encode()).hexdigest() and one["bytes"] == 8
    (second / "train" / "b" / "2.png").write_bytes(b"defgh")
    assert fingerprint(DataConfig(name="imagefolder", root=str(second)))["sha256"] != one["sha256"]


def test_fashion_mnist_is_fingerprinted_by_its_idx_files(tmp_path):
    files = {"train-images-idx3-ubyte": b"\x00\x01", "t10k-labels-idx1-ubyte": b"\x02"}
    for name, payload in files.items():
        (tmp_path / name).write_bytes(payload)
    (tmp_path / "README").write_text("not data")
    found = fingerprint(DataConfig(name="fashion-mnist", root=str(tmp_path)))
    assert found["files"] == {name: hashlib.sha256(payload).hexdigest() for name, payload in files.items()}


@pytest.mark.slow
def test_every_run_of_a_comparison_and_a_classifier_records_what_made_it(tmp_path):
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=p", "--compare"]) == 0
    flipped = json.loads((tmp_path / "p-coded" / "run.json").read_text())
    assert flipped["overrides"][-2:] == ["coded.enabled=true", "name=p-coded"]
    assert flipped["recipe"]["name"] == "simclr-digits"
    quick = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32"]
    assert main(["train", "supervised-digits", *quick, f"out_dir={tmp_path}", "name=s"]) == 0
    record = json.loads((tmp_path / "s" / "run.json").read_text())
    assert record["recipe"]["name"] == "supervised-digits" and record["sessions"][0]["command"][1] == "train"
