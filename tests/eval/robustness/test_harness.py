import json

import pytest
import torch
from ssl_coded.eval.robustness.harness import AttackSettings as AttackConfig
from ssl_coded.eval.robustness.harness import Target, robustness, sanity_checks, verdict

from ssl_coded.cli import main

QUICK = ["trainer.max_epochs=5", "trainer.batch_size=32", "data.max_train=400", "data.max_test=150"]
QUICK += ["optim.warmup_epochs=0", "trainer.log_every_n_steps=1"]
TINY_ATTACK = ["attack.num_examples=32", "attack.eps=[0.05,0.2]", "attack.steps=2", "attack.eot_samples=2"]
TINY_ATTACK += ["attack.square_queries=5", "inference.batch_size=16", "attack.standard=false"]  # torchattacks: below


@pytest.mark.slow
def test_train_compare_attack_writes_the_table_the_verdict_and_the_plot(tmp_path, capsys):
    args = ["train", "supervised-digits", *QUICK, *TINY_ATTACK, f"out_dir={tmp_path}", "name=sup"]
    assert main([*args, "--compare", "--attack"]) == 0
    out = capsys.readouterr().out
    parent = tmp_path / "sup"
    for regularizer in ("erm", "mixup", "coded"):
        summary = json.loads((parent / regularizer / "summary.json").read_text())
        assert summary["regularizer"] == regularizer and summary["test_accuracy"] > 0.3  # chance is 0.1
        assert f"| {regularizer} |" in out
    report = json.loads((parent / "attack.json").read_text())
    assert set(report["results"]) == {"erm", "mixup", "coded", "coded + RCI"}
    rci = report["results"]["coded + RCI"]["eps"]["0.05"]
    assert {"fgsm", "pgd", "square", "eot-pgd", "transfer-pgd", "plain", "adaptive"} <= set(rci)
    for row in report["results"].values():  # adaptive = per-image worst case: never above any attack
        for cell in row["eps"].values():
            assert cell["adaptive"] <= min(v for k, v in cell.items() if k != "adaptive") + 1e-9
    text = (parent / "attack.md").read_text()
    assert "adaptive attack" in text and "## Sanity checks" in text and "coded + RCI" in text
    assert (parent / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    assert "| berrut |" in (parent / "fidelity.md").read_text()
    # the seed summary reads the harness's real files (one seed here: values, no spread)
    assert main(["attack-seeds", str(parent), "--out", str(tmp_path / "seeds")]) == 0
    seeds = (tmp_path / "seeds" / "seeds.md").read_text()
    erm = json.loads((parent / "erm" / "summary.json").read_text())["test_accuracy"]
    assert f"| erm | 1 | {erm:.4f} |" in seeds and "| coded - erm |" in seeds and "seed 0 (" in seeds
    # the attack command alone, on the parent directory, with an override; torchattacks' attacks too
    again = ["--set", "attack.num_examples=16", "attack.standard=true", "attack.eps=[0.2]"]
    assert main(["attack", str(parent), "--out", str(tmp_path / "again"), *again]) == 0
    report = json.loads((tmp_path / "again" / "attack.json").read_text())
    assert report["attack"]["num_examples"] == 16
    assert {"apgd-ce", "apgd-dlr", "square-ta", "standard"} <= set(report["results"]["coded"]["eps"]["0.2"])
    assert {"apgd-eot", "apgd-dlr-eot", "eot-pgd-ta", "standard"} <= set(report["results"]["coded + RCI"]["eps"]["0.2"])
    assert "coded + RCI, torchattacks alone" in (tmp_path / "again" / "attack.md").read_text()
    # attack.rci=false: the coded-trained model alone, without its randomized defence
    alone = ["--set", "attack.num_examples=16", "attack.eps=[0.2]", "attack.rci=false"]
    assert main(["attack", str(parent / "coded"), "--out", str(tmp_path / "alone"), *alone]) == 0
    assert set(json.loads((tmp_path / "alone" / "attack.json").read_text())["results"]) == {"coded"}
    assert "RCI" not in (tmp_path / "alone" / "attack.md").read_text().splitlines()[0]


@pytest.mark.slow
def test_attack_refuses_an_ssl_run_and_bad_overrides(tmp_path, capsys):
    quick = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32"]
    assert main(["pretrain", "simclr-digits", *quick, f"out_dir={tmp_path}", "name=ssl"]) == 0
    capsys.readouterr()
    assert main(["attack", str(tmp_path / "ssl")]) == 2
    assert "attacks need a classifier" in capsys.readouterr().err
    assert main(["attack", str(tmp_path / "ssl"), "--set", "steps=3"]) == 2
    assert "attack.<key>=<value>" in capsys.readouterr().err
    assert main(["train", "simclr-digits"]) == 2
    assert "needs method.name=supervised" in capsys.readouterr().err


def test_sanity_checks_flag_a_masked_gradient():
    # quantised inputs: the gradient is zero everywhere, so gradient attacks only have their random
    # start, which rarely crosses the margin; the worst corner (every pixel -eps) always does, and
    # the gradient-free search finds it: the check must fail
    def masked(x):
        total = ((x * 20).round() / 20).flatten(1).sum(dim=1)
        return torch.stack([total - 4.8, torch.zeros_like(total)], dim=1)  # margin ~1.2 at x ~ 0.5

    x = 0.45 + 0.1 * torch.rand(48, 1, 3, 4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(48, dtype=torch.long)
    cfg = AttackConfig(eps=[0.2], steps=3, square_queries=60, num_examples=48, sanity_eps=0.5)
    target = Target("masked", masked)
    result = robustness(target, x, y, cfg, batch_size=16, seed=0)
    assert result["eps"]["0.2"]["pgd"] > 0.8 and result["eps"]["0.2"]["square"] < 0.2
    checks = {name: passed for name, passed, _ in sanity_checks(target, x, y, cfg, result, 16, 0)}
    assert checks["gradient-free search (square) is not stronger than the gradient attacks"] is False
    # torchattacks' Square (the same queries) also gets far below the gradient attacks: its check fails too
    assert result["eps"]["0.2"]["square-ta"] < result["eps"]["0.2"]["pgd"] - 0.3
    assert checks["gradient-free search (square-ta) is not stronger than the gradient attacks"] is False


def test_verdict_says_plainly_whether_rci_survives():
    undefended = {"clean": 0.9, "eps": {"0.1": {"plain": 0.1, "adaptive": 0.1}}}
    masked = {"clean": 0.89, "eps": {"0.1": {"plain": 0.6, "adaptive": 0.11}}}  # within noise of 0.1
    real = {"clean": 0.89, "eps": {"0.1": {"plain": 0.6, "adaptive": 0.4}}}
    converged = {"coded + RCI": [("more steps: accuracy has stopped falling", True, "")]}
    falling = {"coded + RCI": [("more steps: accuracy has stopped falling", False, "")]}
    assert "does not survive" in verdict({"coded": undefended, "coded + RCI": masked}, [0.1], converged, 400)
    survives = verdict({"coded": undefended, "coded + RCI": real}, [0.1], converged, 400)
    assert "**coded + RCI: RCI's robustness survives" in survives
    assert "is not established" in verdict({"coded": undefended, "coded + RCI": real}, [0.1], falling, 400)


@pytest.mark.parametrize("bad", ["attack.eps=oops", "attack.nope=1"])
def test_bad_attack_override_is_one_line(tmp_path, capsys, bad):
    assert main(["attack", str(tmp_path), "--set", bad]) == 2
    assert capsys.readouterr().err.count("\n") == 1
