"""Faults that used to give a silently wrong result, lose data or end in a traceback (one test each)."""

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch
from ssl_coded.eval.settings import EvalSettings

from ssl_coded.cli import main, parse
from ssl_coded.commands import evaluate_encoder
from ssl_coded.io import OutputError, atomic_write
from ssl_coded.training.checkpoints import AtomicCheckpointIO, CheckpointError, load_checkpoint_file
from ssl_coded.training.config import ConfigError
from ssl_coded.training.recipes import load_config
from tests.console import one_line_error, run_cli

KNN = EvalSettings(("knn",), floors=False, plots=False, device="cpu")

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]


# --- checked before anything runs (fast) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.max_train=-5", "data.max_train=-5 must be >= 0"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1 must be >= 1"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 must be >= 1"),
        ("eval.knn_k=0", "eval.knn_k=0 must be >= 1"),
        ("coded.coded_ratio=-1", "coded.coded_ratio=-1.0 must be > 0"),
        ("optim.lr=0", "optim.lr=0.0 must be > 0"),
        ("coded.score=cross_entropy", "use coded.score=mse or cosine"),
    ],
)
def test_out_of_range_numbers_name_the_full_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("simclr-digits", [override])


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_an_empty_recipe_is_refused(tmp_path, text):
    recipe = tmp_path / "empty.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError, match=r"is empty|must be a mapping"):
        load_config(str(recipe))


def test_a_yaml_syntax_error_names_its_line_and_column(tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("data:\n  name: digits\nmethod: [simclr\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+"):
        load_config(str(recipe))


def test_options_may_follow_the_overrides():
    args = parse(["train", "supervised-digits", "--compare", "seed=0", "--attack", "name=x"])
    assert args.command == "train" and args.compare and args.attack and args.overrides == ["seed=0", "name=x"]
    args = parse(["pretrain", "simclr-digits", "coded.enabled=true", "--compare", "trainer.max_epochs=2"])
    assert args.compare and args.overrides == ["coded.enabled=true", "trainer.max_epochs=2"]


def test_checkpoint_errors_say_what_the_file_is_not(tmp_path):
    pickled = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole pickled model: never unpickled
    with pytest.raises(CheckpointError, match=r"pickled Python objects .* save model\.state_dict") as info:
        load_checkpoint_file(pickled)
    assert "\x1b[" not in str(info.value) and "\n" not in str(info.value)  # no terminal codes, one line
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(pickled.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a complete torch checkpoint"):
        load_checkpoint_file(truncated)


def test_non_finite_weights_are_never_written(tmp_path):
    weights = {"layer.weight": torch.tensor([1.0, math.nan]), "layer.step": torch.tensor([3])}
    with pytest.raises(CheckpointError, match=r"non-finite weights in layer\.weight"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": weights}, tmp_path / "nan.ckpt")
    assert not list(tmp_path.iterdir())


def test_a_full_disk_or_unwritable_place_is_one_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=re.escape(f"cannot write {blocker / 'run' / 'x.json'}")):
        atomic_write(blocker / "run" / "x.json", lambda tmp: None)  # a file where a folder should be

    def disk_full(tmp):
        raise RuntimeError("[enforce fail at inline_container.cc:664] PytorchStreamWriter failed writing file")

    (tmp_path / "kept.ckpt").write_text("old")
    with pytest.raises(OutputError, match=r"cannot write .*kept\.ckpt: .*PytorchStreamWriter"):
        atomic_write(tmp_path / "kept.ckpt", disk_full)
    assert (tmp_path / "kept.ckpt").read_text() == "old" and len(list(tmp_path.iterdir())) == 2  # no temp file


@pytest.mark.slow
def test_numeric_errors_come_before_any_output_and_leave_no_run_directory(tmp_path):
    result = run_cli("pretrain", "simclr-digits", "coded.coded_ratio=-1", f"out_dir={tmp_path}/runs", cwd=tmp_path)
    one_line_error(result, "coded.coded_ratio=-1.0 must be > 0")
    assert result.stdout == "" and not (tmp_path / "runs").exists()
    unwritable = tmp_path / "file"
    unwritable.write_text("x")
    one_line_error(run_cli("pretrain", "simclr-digits", *QUICK, f"out_dir={unwritable}", cwd=tmp_path), str(unwritable))


# --- runs (slow) -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_diverging_run_stops_with_exit_2_and_writes_no_broken_checkpoint(tmp_path):
    args = ["pretrain", "simclr-digits", "optim.lr=1e7", "trainer.max_epochs=3", f"out_dir={tmp_path}", "name=nan"]
    result = run_cli(*args, cwd=tmp_path)
    one_line_error(result, "training diverged at step", "loss nan", "last good checkpoint", "lower optim.lr")
    assert not (tmp_path / "nan" / "summary.json").exists()
    for checkpoint in (tmp_path / "nan" / "checkpoints").glob("*.ckpt"):  # whatever was written is finite
        weights = torch.load(checkpoint, weights_only=True)["state_dict"].values()
        assert all(w.isfinite().all() for w in weights if w.is_floating_point())
    from ssl_coded.rundir import run_status

    assert json.loads((tmp_path / "nan" / "run.json").read_text())["sessions"][-1]["how"] == "failed"
    assert run_status(tmp_path / "nan") == "failed"  # what `ssl-coded runs` shows


@pytest.mark.slow
def test_a_run_that_would_train_nothing_is_refused_before_it_starts(tmp_path):
    one_line_error(
        run_cli("pretrain", "simclr-digits", "data.max_train=200", f"out_dir={tmp_path}", cwd=tmp_path),
        "has 200 images",
        "trainer.batch_size=256",
        "smaller batch or more data",
    )
    assert not (tmp_path / "simclr-digits").exists()


@pytest.mark.slow
def test_nothing_written_is_replaced_without_overwrite_and_compare_checks_both_first(tmp_path):
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=x-coded"]) == 0
    summary = (tmp_path / "x-coded" / "summary.json").read_text()
    # --compare would train x, then collide with x-coded: refused before x trains
    result = run_cli("pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=x", "--compare", cwd=tmp_path)
    one_line_error(result, "x-coded already has checkpoints")
    assert not (tmp_path / "x").exists()
    # checkpoints deleted, the rest kept: the name is still taken
    for checkpoint in (tmp_path / "x-coded" / "checkpoints").iterdir():
        checkpoint.unlink()
    result = run_cli("pretrain", "byol-digits", *QUICK, f"out_dir={tmp_path}", "name=x-coded", cwd=tmp_path)
    one_line_error(result, "already holds an earlier run's files", "--overwrite")
    assert (tmp_path / "x-coded" / "summary.json").read_text() == summary
    overwrite = ["pretrain", "byol-digits", *QUICK, f"out_dir={tmp_path}", "name=x-coded", "--overwrite"]
    assert main(overwrite) == 0
    assert json.loads((tmp_path / "x-coded" / "summary.json").read_text())["method"] == "byol"


@pytest.mark.slow
def test_evaluating_other_data_never_reuses_the_cached_features(quick_run):
    first = evaluate_encoder(quick_run, KNN)["encoder"]
    other = evaluate_encoder(quick_run, KNN, data=["max_test=50"])["encoder"]
    saved = json.loads((quick_run / "results.json").read_text())
    assert saved["data"]["max_test"] == 50 and saved["rows"]["encoder"] == other
    fresh = evaluate_encoder(quick_run, KNN, data=["max_test=50"])
    assert fresh["encoder"] == other and other != first  # 50 test images: not the first run's figures
    assert list(quick_run.glob("results-*.json"))  # the first data's results moved aside, not lost


@pytest.mark.slow
def test_results_of_protocols_accumulate(quick_run):
    evaluate_encoder(quick_run, KNN)
    evaluate_encoder(quick_run, dataclasses.replace(KNN, protocols=("linear",)))
    saved = json.loads((quick_run / "results.json").read_text())
    assert {"knn_dino_top1", "linear_top1"} <= set(saved["rows"]["encoder"])
    assert set(saved["protocols"]) == {"knn", "linear"} and all("made" in p for p in saved["protocols"].values())


@pytest.mark.slow
def test_dataset_overrides_are_typed_and_checked(quick_run, capsys):
    assert main(["eval", "knn", str(quick_run), "--no-floors", "--dataset", "max_test=100"]) == 0
    assert json.loads((quick_run / "results.json").read_text())["data"]["max_test"] == 100  # an int, not "100"
    capsys.readouterr()
    assert main(["eval", "knn", str(quick_run), "--dataset", "bogus=1"]) == 2
    assert "data.bogus" in capsys.readouterr().err


@pytest.mark.slow
def test_a_normal_run_prints_only_what_the_user_asked_for(tmp_path):
    result = run_cli("pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for noise in ("GPU available", "TPU available", "litlogger", "LeafSpec", "limit_train_batches", "Loading"):
        assert noise not in result.stderr + result.stdout, noise
    assert "Epoch 0" not in result.stdout + result.stderr  # no progress bar when output is not a terminal
    assert "| simclr |" in result.stdout and "Reading: " in result.stdout and "Next: " in result.stdout
    metrics = (tmp_path / "quiet" / "metrics.csv").read_text().splitlines()
    column = metrics[0].split(",").index("train_loss")
    assert [row for row in metrics[1:] if row.split(",")[column]]  # a two-step epoch still logs its loss
    verbose = run_cli(
        "pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=loud", "--verbose", cwd=tmp_path
    )
    assert "GPU available" in verbose.stderr + verbose.stdout


def test_k_larger_than_the_bank_is_said_once():
    from ssl_coded.notices import RunWarning
    from ssl_coded.search.knn import knn_metrics

    bank, labels = torch.randn(47, 4), torch.randint(0, 3, (47,))  # a size no other test uses
    with pytest.warns(RunWarning, match=r"k=200 is larger than the bank \(47 rows\)") as record:
        scores = knn_metrics(bank, labels, bank[:5], labels[:5], 3)
        knn_metrics(bank, labels, bank[5:9], labels[5:9], 3)
    assert len([w for w in record if issubclass(w.category, RunWarning)]) == 1
    assert np.isfinite(list(scores.values())).all()


def test_training_batches_count_every_device_and_the_dropped_last_batch():
    from ssl_coded.training.loop import check_training_batches

    config = load_config("simclr-digits", ["trainer.batch_size=64"])
    assert check_training_batches(config, 1293) == 20
    assert check_training_batches(config, 1293, world_size=2) == 10  # 647 images per rank (padded)
    assert check_training_batches(config, 128, world_size=2) == 1
    with pytest.raises(ConfigError, match=r"125 images \(63 per device\), too few for one batch"):
        check_training_batches(config, 125, world_size=2)
    limited = load_config("simclr-digits", ["trainer.batch_size=64", "trainer.limit_train_batches=0.01"])
    with pytest.raises(ConfigError, match=r"limit_train_batches=0\.01"):
        check_training_batches(limited, 1293)


def test_run_names_stay_inside_out_dir():
    for name in (".", "..", "a/b"):
        with pytest.raises(ConfigError, match="must be a plain folder name"):
            load_config("simclr-digits", [f"name={name}"])


def test_every_method_stops_on_a_non_finite_loss():
    from ssl_coded.data import load_splits
    from ssl_coded.training.methods import build_method
    from ssl_coded.training.methods.base import DivergenceError

    for recipe in ("simclr-digits", "supervised-digits"):  # supervised overrides training_step
        config = load_config(recipe, ["data.max_train=64", "data.max_test=32"])
        method = build_method(config, load_splits(config.data))
        with pytest.raises(DivergenceError, match=r"training diverged at step 0 .*: loss nan"):
            method.on_before_backward(torch.tensor(float("nan")))


@pytest.mark.slow
def test_lightlys_deprecation_warnings_stay_quiet(tmp_path):
    # lightly's DINO head builds its last layer with torch's deprecated weight_norm: torch's warning, not the run's
    result = run_cli("pretrain", "dino-digits", *QUICK, f"out_dir={tmp_path}", "name=dino", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "FutureWarning" not in result.stderr and "weight_norm" not in result.stderr
