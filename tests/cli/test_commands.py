import dataclasses

import pytest
import torch
from ssl_coded.eval.robustness.harness import AttackSettings

from ssl_coded.training.config import AttackConfig
from tests.conftest import QUICK_PRETRAIN


def test_the_recipe_attack_section_and_the_harness_settings_agree():
    # attacks.attack_runs builds AttackSettings(**asdict(config.attack)): same fields, same defaults
    recipe = {f.name: getattr(AttackConfig(), f.name) for f in dataclasses.fields(AttackConfig)}
    harness = {f.name: getattr(AttackSettings(), f.name) for f in dataclasses.fields(AttackSettings)}
    assert recipe == harness


@pytest.mark.slow
def test_a_run_evaluated_through_the_library_gives_the_commands_numbers(quick_run):
    run = quick_run
    from ssl_coded.eval import evaluate
    from ssl_coded.eval.settings import EvalSettings

    from ssl_coded.commands import evaluate_encoder
    from ssl_coded.encoders import load_encoder
    from ssl_coded.training.checkpoints import load_trained

    by_command = evaluate_encoder(run, EvalSettings(floors=False, plots=False, device="cpu"))["encoder"]
    splits = load_trained(run).splits
    by_library = evaluate(load_encoder(run), splits.train, splits.test, val=splits.val, device="cpu")["encoder"]
    assert by_library.keys() == by_command.keys()
    for metric, value in by_command.items():
        assert by_library[metric] == pytest.approx(value, abs=1e-6), metric
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert torch.allclose(checkpoint["state_dict"]["mean"].flatten(), torch.tensor(splits.mean))  # stored now


@pytest.mark.slow
def test_checkpoints_without_stored_normalisation_still_load(quick_run, tmp_path):
    import shutil

    from ssl_coded.cli import main
    from ssl_coded.training.checkpoints import load_trained

    copy = shutil.copytree(quick_run, tmp_path / "run")
    path = copy / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    stored = checkpoint["state_dict"].pop("mean").clone(), checkpoint["state_dict"].pop("std").clone()
    torch.save(checkpoint, tmp_path / "old.ckpt")  # as written before mean/std were stored
    method = load_trained(tmp_path / "old.ckpt").method
    assert torch.allclose(method.mean, stored[0]) and torch.allclose(method.std, stored[1])  # recomputed from the data
    torch.save(checkpoint, path)
    args = [
        "pretrain",
        "simclr-digits",
        *QUICK_PRETRAIN,
        "trainer.max_epochs=2",
        f"out_dir={tmp_path}",
        "name=run",
        "--resume",
    ]
    assert main(args) == 0  # a resume from it loads strictly too


def test_attacks_refuse_a_device_that_is_not_there(tmp_path, capsys):
    from ssl_coded.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["attack", str(tmp_path), "--device", "cuda:0"]) == 2
    assert "this machine has no CUDA device; use --device cpu" in capsys.readouterr().err
