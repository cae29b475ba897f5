"""`eval robust`: the probe served through the encoder gives scikit-learn's logits on the encoder's
features, differentiably; torchattacks leaves a module's mode alone; the monotone-in-eps check fails on a
curve that rises; the command runs on a run, a torchvision model and a module:callable, and refuses to
overwrite a report."""

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from ssl_coded.eval.robustness.encoder_probe import probe_classifier
from ssl_coded.eval.robustness.harness import AttackSettings, Target, sanity_checks
from ssl_coded.eval.robustness.standard import standard_attacks
from torch import nn

from ssl_coded.cli import main


def encoder_and_images(n: int, seed: int):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Tanh()).eval()
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    x = (torch.rand(n, 1, 4, 4, generator=generator) * 0.6 + 0.2 * labels.view(-1, 1, 1, 1)).clamp(0, 1)
    return encoder, x, labels


def test_the_served_probe_gives_scikit_learns_logits_on_the_encoders_features():
    encoder, x, y = encoder_and_images(300, 0)
    with torch.no_grad():
        f = encoder(x).numpy()
    features = {
        "train": (f[:180], y[:180].numpy()),
        "val": (f[180:240], y[180:240].numpy()),
        "test": (f[240:], y[240:].numpy()),
    }
    probed, probe = probe_classifier(encoder, features)

    joint_x, joint_y = f[:240], y[:240].numpy()
    scaler = StandardScaler().fit(joint_x)
    reference = LogisticRegression(C=probe.best_c, tol=1e-10, max_iter=10_000).fit(scaler.transform(joint_x), joint_y)
    logits = probed(x[240:]).detach().numpy()
    expected = reference.decision_function(scaler.transform(f[240:]))
    # the probe stops at scikit-learn's default tol (1e-4), the reference far below it
    assert np.abs(logits - expected).max() < 0.01 * np.abs(expected).max()
    assert np.array_equal(logits.argmax(1), expected.argmax(1))
    assert (logits.argmax(1) == y[240:].numpy()).mean() == pytest.approx(probe.test_top1)

    pixels = x[240:].clone().requires_grad_(True)
    probed(pixels).sum().backward()
    assert pixels.grad.abs().sum() > 0  # the attack's gradient reaches the pixels through the encoder


def test_torchattacks_do_not_switch_a_modules_mode():
    encoder, x, y = encoder_and_images(60, 1)
    model = nn.Sequential(encoder, nn.Linear(8, 3)).eval()
    standard_attacks(model, x[:8], y[:8], eps=0.05, steps=2, eot_samples=1, square_queries=5, seed=0)
    assert not any(m.training for m in model.modules())


def test_the_eps_check_fails_where_accuracy_rises_with_eps():
    x, y = torch.rand(40, 1, 2, 2), torch.zeros(40, dtype=torch.long)
    target = Target("flat", lambda images: torch.stack([images.flatten(1).sum(1), torch.zeros(len(images))], 1))
    cfg = AttackSettings(eps=[0.02, 0.1], steps=2, square_queries=5, sanity_eps=0.5, standard=False)
    rising = {
        "eps": {
            "0.02": {"adaptive": 0.2, "pgd": 0.2, "square": 0.3},
            "0.1": {"adaptive": 0.9, "pgd": 0.9, "square": 0.9},
        }
    }
    checks = {name: passed for name, passed, _ in sanity_checks(target, x, y, cfg, rising, 20, 0)}
    assert checks["the attacks succeed more as eps grows (worst case over attacks)"] is False


def make_encoder() -> nn.Module:
    """A `module:callable` encoder for the command test."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())


QUICK_ATTACK = ["--examples", "12", "--eps", "0.05,0.3", "--steps", "2", "--square-queries", "5", "--device", "cpu"]


@pytest.mark.slow  # a short pretraining and three attacked encoders
@pytest.mark.parametrize("kind", ["run", "torchvision", "module"])
def test_eval_robust_from_the_command_line(kind, tmp_path, capsys):
    from tests.training.test_loop import QUICK

    if kind == "run":
        assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=run"]) == 0
        encoder, extra = str(tmp_path / "run"), []
    else:
        name = (
            "torchvision:resnet18" if kind == "torchvision" else "tests.eval.robustness.test_encoder_probe:make_encoder"
        )
        encoder, extra = name, ["--dataset", "name=digits", "max_train=300"]
    out = tmp_path / "out"
    standard = [] if kind == "module" else ["--no-standard"]  # torchattacks once, on the cheapest model
    assert main(["eval", "robust", encoder, *extra, *QUICK_ATTACK, *standard, "--out", str(out)]) == 0
    report = json.loads((out / "robust" / "attack.json").read_text())
    expected = {"encoder + linear probe", "raw pixels + linear probe"} | (
        {"random init + linear probe"} if kind == "run" else set()
    )
    assert set(report["results"]) == expected
    assert report["num_attacked"] == 12 and set(report["results"]["encoder + linear probe"]["eps"]) == {"0.05", "0.3"}
    assert "linear_top1" in report["probes"]["encoder"]
    assert (out / "robust" / "attack.md").is_file() and (out / "robust" / "robustness.png").is_file()
    if kind == "module":
        assert "apgd-ce" in report["results"]["encoder + linear probe"]["eps"]["0.05"]
    before = (out / "robust" / "attack.json").read_bytes()
    capsys.readouterr()
    assert main(["eval", "robust", encoder, *extra, *QUICK_ATTACK, "--out", str(out)]) == 2
    assert "already holds a robustness report" in capsys.readouterr().err
    assert (out / "robust" / "attack.json").read_bytes() == before
