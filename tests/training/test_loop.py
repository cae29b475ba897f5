import csv
import json
import os
import random
import subprocess
import sys

import pytest
import torch

from ssl_coded.cli import main
from ssl_coded.training.config import available_recipes
from ssl_coded.training.loop import pretrain
from ssl_coded.training.recipes import load_config
from tests.console import one_line_error, run_cli, run_cli_together
from tests.data.test_datasets import make_image_folder

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=256"]
QUICK += ["trainer.log_every_n_steps=1"]
DDP_METHODS = ("simclr", "moco", "mocov3", "vicreg", "barlowtwins", "simsiam", "dino", "swav")


def small_heads(name):
    """A GPU recipe's heads and local crops cut to the tiny folder's 32 pixels: its keys and structure are what
    the smoke run checks; 8192-wide expanders and 96-pixel local crops would only make it slow."""
    method = load_config(name).method
    sizes = {"projection_dim": 256, "hidden_dim": 256, "output_dim": 256, "bottleneck_dim": 64, "prototypes": 64}
    cut = [f"method.{key}={value}" for key, value in sizes.items() if getattr(method, key, 0) > value]
    return cut + (["method.local_crop_size=14"] if getattr(method, "local_crop_size", 0) else [])


def recipe_overrides(name, tmp_path, request):
    coded = "method.regularizer=coded" if name.startswith("supervised") else "coded.enabled=true"
    overrides = [*QUICK, f"out_dir={tmp_path}", coded, "trainer.accelerator=cpu"]
    if "fashion-mnist" in name:
        request.getfixturevalue("fashion_mnist_root")
        overrides += ["data.max_train=512", "data.max_test=256"]
    if "cifar10" in name or "imagefolder" in name:  # GPU recipes of data to download or bring: a tiny folder
        root = make_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_class=24, size=32)
        overrides += ["data.name=imagefolder", f"data.root={root}", "data.image_size=32", "data.num_workers=0"]
        overrides += ["trainer.precision=32-true", "data.val_fraction=0.1", "eval.bank_size=64"]
        overrides += ["model.backbone=resnet18_cifar"] if "cifar10" in name else []
        overrides += small_heads(name)
    return overrides


@pytest.mark.slow
@pytest.mark.parametrize("recipe", available_recipes())
def test_every_recipe_smoke_runs_with_coded_smoothing(recipe, tmp_path, request):
    summary = pretrain(load_config(recipe, recipe_overrides(recipe, tmp_path, request)))
    monitor = "val_accuracy" if recipe.startswith("supervised") else "val_knn_top1"
    assert summary["coded"] is True and summary[f"best_{monitor}"] is not None
    rows = list(csv.DictReader((tmp_path / recipe / "metrics.csv").open()))
    penalties = [float(r["train_coded_penalty"]) for r in rows if r.get("train_coded_penalty")]
    assert len(penalties) == 2 and all(p > 0 for p in penalties)  # the coded branch ran every step


@pytest.mark.slow
def test_run_directory_holds_everything(tmp_path, capsys):
    code = main(["pretrain", "simclr-digits", *QUICK, "trainer.max_epochs=2", f"out_dir={tmp_path}", "name=run"])
    assert code == 0
    run = tmp_path / "run"
    for name in ("config.yaml", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "metrics.csv", "curves.png"):
        assert (run / name).stat().st_size > 0, name
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["rows"]) == {"encoder", "random init", "raw pixels"} and summary["epochs"] == 2
    assert set(summary["rows"]["encoder"]) == {f"knn_{p}_top{k}" for p in ("dino", "instdisc") for k in (1, 5)}
    assert "max_epochs: 2" in (run / "config.yaml").read_text()
    assert "| simclr |" in (run / "results.md").read_text() and "| raw pixels |" in capsys.readouterr().out
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["recipe_method"] == "simclr" and checkpoint["epoch"] == 1


KILL_SCRIPT = """
import os, signal, sys
import pytorch_lightning as pl
from ssl_coded.training.recipes import load_config
from ssl_coded.training.loop import pretrain

class KillAtStep(pl.Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == int(os.environ["KILL_AT_STEP"]):  # a hard kill, no clean-up
            os.kill(os.getpid(), signal.SIGKILL)

pretrain(load_config("simclr-digits", sys.argv[1:]), callbacks=[KillAtStep()])
"""


@pytest.mark.slow
def test_resume_after_a_kill_reaches_the_same_metrics(tmp_path):
    # digits: 1,293 training images, batch 64: 20 steps per epoch, 80 in all. Validation (and so a best
    # checkpoint) every second epoch: killed at a seeded random step of epoch 1, the run can resume only
    # from the last.ckpt of epoch 0, an epoch that saved no best
    overrides = ["trainer.max_epochs=4", "trainer.batch_size=64", "eval.bank_size=300", "coded.enabled=true"]
    overrides += [f"out_dir={tmp_path}", "eval.every_n_epochs=2"]
    step = random.Random(14).randint(21, 39)
    env = {**os.environ, "KILL_AT_STEP": str(step)}
    killed = subprocess.run([sys.executable, "-c", KILL_SCRIPT, *overrides, "name=resumed"], cwd=tmp_path, env=env)
    assert killed.returncode == -9
    assert not (tmp_path / "resumed" / "summary.json").exists()
    finished = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert finished == step // 20 - 1  # last.ckpt is the last finished epoch, whether or not it was the best
    assert main(["pretrain", "simclr-digits", *overrides, "name=resumed", "--resume"]) == 0
    assert main(["pretrain", "simclr-digits", *overrides, "name=straight"]) == 0

    def final(name):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        rows = [line.split(",") for line in (tmp_path / name / "metrics.csv").read_text().splitlines()]
        knn_column = rows[0].index("val_knn_top1")
        curve = [row[knn_column] for row in rows[1:] if row[knn_column]]
        return summary["rows"], curve

    resumed, straight = final("resumed"), final("straight")
    assert len(straight[1]) == 2
    assert resumed == straight
    for name in ("resumed", "straight"):
        assert torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_status_2(tmp_path):
    checkpoints = tmp_path / "runs" / "broken" / "checkpoints"
    checkpoints.mkdir(parents=True)
    garbage = b"this is not a checkpoint"
    (checkpoints / "last.ckpt").write_bytes(garbage)
    broken = ["pretrain", "simclr-digits", f"out_dir={tmp_path}/runs", "name=broken"]
    results = run_cli_together(  # none of them writes anything, so they may run side by side
        ["pretrain", "simclr-imagenet"],
        ["pretrain", "simclr-digits", "coded.wieght=1"],
        ["pretrain", "simclr-fashion-mnist", f"data.root={tmp_path}/none", f"out_dir={tmp_path}"],
        [*broken, "--resume"],
        cwd=tmp_path,
    )
    unknown, misspelt, missing, unreadable = results
    again = run_cli(*broken, cwd=tmp_path)  # not beside the resume: one run, one command at a time (its lock)
    one_line_error(unknown, "unknown recipe", "simclr-digits")
    one_line_error(misspelt, "coded.weight")
    one_line_error(missing, "does not exist", "dataset-fashion-mnist")
    one_line_error(unreadable, "cannot be read")
    assert (checkpoints / "last.ckpt").read_bytes() == garbage  # nothing written is lost
    one_line_error(again, "already has checkpoints", "--resume")


@pytest.mark.slow
def test_checkpoint_from_another_method_is_refused(tmp_path):
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=run"]) == 0
    result = run_cli("pretrain", "byol-digits", *QUICK, f"out_dir={tmp_path}", "name=run", "--resume", cwd=tmp_path)
    one_line_error(result, "written by method 'simclr'", "byol")


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe", [f"{m}-digits" for m in ("simclr", "moco", "vicreg", "barlowtwins", "simsiam", "dino")]
)
def test_two_process_ddp_on_cpu_trains(tmp_path, recipe):  # the methods with their own code under DDP
    args = ["pretrain", recipe, *QUICK, f"out_dir={tmp_path}", "name=ddp", "coded.enabled=true"]
    args += ["coded.gather=true", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "ddp" / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((tmp_path / "ddp" / "summary.json").read_text())["coded"] is True


def test_summary_table_without_floors():
    from ssl_coded.training.summary import format_summary

    summary = {"method": "simclr", "coded": False, "seconds": 3.0}
    summary["rows"] = {"encoder": {"knn_dino_top1": 0.5, "knn_instdisc_top1": 0.25}}
    table = format_summary(summary)
    assert "raw pixels" not in table and "| simclr | 0.5000 | 0.2500 | 3 |" in table
