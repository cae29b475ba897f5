import csv
import json

import pytest
from scipy.stats import ttest_rel
from ssl_coded.eval.robustness.seeds import load_seed, summarise_seeds

from ssl_coded.cli import main

EPS = [0.05, 0.1]


def fake_run(root, seed, test_accuracy, adaptive, rci_gain=0.0, checks_pass=True):
    """A `train --compare --attack` directory as the harness writes it, with chosen figures.

    adaptive: {model: (eps 0.05, eps 0.1)} adaptive robust accuracy; plain is adaptive + 0.1."""
    run = root / f"seed{seed}"
    results = {}
    for model, values in adaptive.items():
        results[model] = {
            "clean": 0.9,
            "eps": {f"{e:g}": {"pgd": v, "plain": v + 0.1, "adaptive": v} for e, v in zip(EPS, values, strict=True)},
        }
    results["coded + RCI"] = {
        "clean": 0.89,
        "eps": {
            f"{e:g}": {"pgd": v + rci_gain, "plain": v + 0.2, "adaptive": v + rci_gain}
            for e, v in zip(EPS, adaptive["coded"], strict=True)
        },
    }
    checks = {
        name: [{"check": "more steps do not raise accuracy", "passed": checks_pass, "detail": "-"}] for name in results
    }
    report = {"attack": {"eps": EPS, "num_examples": 400}, "results": results, "checks": checks}
    (run).mkdir(parents=True)
    (run / "attack.json").write_text(json.dumps(report))
    for model, accuracy in test_accuracy.items():
        (run / model).mkdir()
        (run / model / "summary.json").write_text(json.dumps({"test_accuracy": accuracy, "seconds": 1.0}))
        (run / model / "config.yaml").write_text(f"seed: {seed}\nname: {model}\n")
    return run


def three_seeds(tmp_path, rci_gain=0.0):
    runs = []
    for seed, (erm, coded) in enumerate([(0.90, 0.91), (0.92, 0.92), (0.94, 0.96)]):
        adaptive = {"erm": (0.10, 0.0), "mixup": (0.05, 0.0), "coded": (0.10 + 0.10 + 0.02 * seed, 0.01)}
        runs.append(fake_run(tmp_path, seed, {"erm": erm, "mixup": 0.9, "coded": coded}, adaptive, rci_gain))
    return runs


def test_means_spreads_and_paired_differences(tmp_path):
    runs = three_seeds(tmp_path)
    text = summarise_seeds(runs[::-1], tmp_path / "out")  # order of the arguments does not matter
    assert text.startswith("Seeds 0, 1, 2;")
    # erm test accuracy 0.90, 0.92, 0.94: mean 0.92, std 0.02
    assert "| erm | 3 | 0.9200 +- 0.0200 | 0.9000 |" in text.replace(" +- 0.0000", "")
    # coded - erm adaptive at eps 0.05: 10, 12, 14 points; coded - erm test accuracy: 1, 0, 2 points
    coded_row = next(line for line in text.splitlines() if line.startswith("| coded - erm |"))
    p_test = ttest_rel([0.91, 0.92, 0.96], [0.90, 0.92, 0.94]).pvalue
    assert f"+1.00 +- 1.00 (p {p_test:.2g})" in coded_row
    p_eps = ttest_rel([0.20, 0.22, 0.24], [0.10, 0.10, 0.10]).pvalue
    assert f"+12.00 +- 2.00 (p {p_eps:.2g})" in coded_row
    # RCI has no test accuracy of its own; its adaptive gain over coded is 0 on every seed: no spread, no test
    rci_row = next(line for line in text.splitlines() if line.startswith("| coded + RCI - coded"))
    assert rci_row.split(" | ")[1] == "-" and "+0.00 +- 0.00 (p -)" in rci_row
    assert text.count("RCI's robustness does not survive the adaptive attack") == 3
    assert "seed 2 (4 of 4 sanity checks passed)" in text
    out = tmp_path / "out"
    assert (out / "seeds.md").read_text() == text + "\n"
    lines = list(csv.DictReader((out / "seeds.csv").open()))
    assert len(lines) == 3 * 4 and {line["seed"] for line in lines} == {"0", "1", "2"}
    assert float(
        next(r for r in lines if r["seed"] == "2" and r["model"] == "coded")["eps=0.05 adaptive"]
    ) == pytest.approx(0.24)
    assert (out / "robustness-seeds.png").read_bytes()[:4] == b"\x89PNG"


def test_a_real_gain_with_passing_checks_survives(tmp_path):
    text = summarise_seeds(three_seeds(tmp_path, rci_gain=0.2), tmp_path / "out")
    assert text.count("RCI's robustness survives the adaptive attack") == 3
    assert "+20.00 +- 0.00 (p -)" in text


def test_bad_inputs_fail_with_a_clear_message(tmp_path, capsys):
    runs = three_seeds(tmp_path)
    with pytest.raises(ValueError, match="repeat a seed"):
        summarise_seeds([runs[0], runs[0]], tmp_path / "out")
    assert main(["attack-seeds", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "--compare --attack" in capsys.readouterr().err
    fake_run(tmp_path / "other", 5, {"erm": 0.9}, {"erm": (0.1, 0.0), "coded": (0.1, 0.0)})
    with pytest.raises(ValueError, match="different models"):  # seed 5 has no mixup
        summarise_seeds([runs[0], tmp_path / "other" / "seed5"], tmp_path / "out")
    report = json.loads((runs[2] / "attack.json").read_text())
    report["attack"]["steps"] = 20
    (runs[2] / "attack.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match="different settings"):
        summarise_seeds(runs, tmp_path / "out")
    (runs[1] / "coded" / "config.yaml").write_text("seed: 7\n")
    with pytest.raises(ValueError, match="seeds \\[1, 7\\]"):
        load_seed(runs[1])
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_runs_attacked_where_they_lie_are_found_from_the_report(tmp_path):
    # a study's cells: the models live in their own directories and the report (written elsewhere) lists them
    run = fake_run(tmp_path, 3, {"erm": 0.81, "coded": 0.83}, {"erm": (0.1, 0.0), "coded": (0.2, 0.0)})
    cells = []
    for model in ("erm", "coded"):
        cell = tmp_path / "study" / f"1000-aug-{model}" / "seed3"
        cell.mkdir(parents=True)
        (run / model / "summary.json").rename(cell / "summary.json")
        (cell / "config.yaml").write_text(f"method:\n  name: supervised\n  regularizer: {model}\nseed: 3\n")
        cells.append(str(cell))
    report = json.loads((run / "attack.json").read_text())
    (run / "attack.json").write_text(json.dumps({**report, "runs": cells}))
    seed = load_seed(run)
    assert seed["seed"] == 3 and seed["models"]["coded"]["test accuracy"] == 0.83
    assert "test accuracy" not in seed["models"]["coded + RCI"]


def test_a_report_without_rci_says_so_instead_of_a_blank_verdict(tmp_path):
    runs = three_seeds(tmp_path)
    for run in runs:  # attack.rci=false: the deterministic models alone
        report = json.loads((run / "attack.json").read_text())
        del report["results"]["coded + RCI"], report["checks"]["coded + RCI"]
        (run / "attack.json").write_text(json.dumps(report))
    text = summarise_seeds(runs, tmp_path / "out")
    assert text.count("checks passed): no randomized defence in this report.") == 3
    assert "coded + RCI" not in text
