import csv
import json
import math

import pytest

from ssl_coded.cli import main
from ssl_coded.study import load_study, run_study, slug

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]
QUICK += ["eval.floors=false"]


def write_study(tmp_path, rows):
    lines = [
        "name: tiny",
        f"out_dir: {tmp_path / 'studies'}",
        "seeds: [0, 1]",
        f"common: [{', '.join(QUICK)}]",
        "protocols: [knn]",
        "rows:",
        *rows,
    ]
    path = tmp_path / "tiny.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_study_runs_every_cell_resumes_and_tabulates(tmp_path, capsys):
    # one row, two seeds: each cell is a child process (its own peak memory), so keep the test small
    path = write_study(tmp_path, ["  - {name: SimCLR + coded, recipe: simclr-digits, overrides: [coded.enabled=true]}"])
    table = run_study(path)
    root = tmp_path / "studies" / "tiny"
    assert set(table) == {"SimCLR + coded"}
    mean, std, seeds = table["SimCLR + coded"]["knn_dino_top1"]
    assert seeds == 2 and 0.0 < mean <= 1.0 and std >= 0.0
    cells = list(csv.DictReader((root / "cells.csv").open()))
    assert len(cells) == 2 and {c["seed"] for c in cells} == {"0", "1"}
    for cell in cells:  # every cell records its cost
        assert float(cell["seconds"]) > 0 and float(cell["peak_mb"]) > 50
    assert len({c["knn_dino_top1"] for c in cells}) == 2  # two seeds, two different encoders
    assert "| SimCLR + coded | 2 |" in (root / "results.md").read_text()
    summary = json.loads((root / "simclr-coded" / "seed0" / "summary.json").read_text())
    assert set(summary["rows"]) == {"encoder"}  # eval.floors=false: computed once per study, not per cell
    record = json.loads((root / "simclr-coded" / "seed0" / "run.json").read_text())
    assert record["sessions"][0]["command"] == ["ssl-coded", "study", str(path)]  # what started the cell
    assert record["recipe"]["name"] == "simclr-digits" and "coded.enabled=true" in record["overrides"]
    assert (root / "knn_dino_top1.png").read_bytes()[:4] == b"\x89PNG"

    # a finished cell is kept; a removed result is redone (and only that one)
    done = root / "simclr-coded" / "seed0.json"
    kept = root / "simclr-coded" / "seed1.json"
    before = kept.stat().st_mtime_ns
    first = json.loads(done.read_text())
    done.unlink()
    (root / "simclr-coded" / "seed0" / "cell.json").unlink()
    capsys.readouterr()
    second = run_study(path)
    out = capsys.readouterr().out
    assert "[1/2] SimCLR + coded, seed 0" in out and "seed 1 ->" not in out
    assert kept.stat().st_mtime_ns == before
    assert json.loads(done.read_text())["knn_dino_top1"] == first["knn_dino_top1"]  # same checkpoint
    assert json.loads(done.read_text())["resumed"] is False  # evaluated again, trained once: its time stands
    assert main(["study", str(path), "--summary"]) == 0

    # another machine: no run directories, only the committed results; nothing is redone
    moved = path.read_text().replace(f"out_dir: {tmp_path / 'studies'}", f"out_dir: {tmp_path / 'elsewhere'}")
    moved += f"results_dir: {root}\n"
    (tmp_path / "moved.yaml").write_text(moved)
    capsys.readouterr()
    again = run_study(tmp_path / "moved.yaml")
    assert "[1/" not in capsys.readouterr().out and again == second


def test_bad_study_files_fail_before_any_training(tmp_path, capsys):
    bad_key = write_study(tmp_path, ["  - {name: x, recipe: simclr-digits, overrides: [coded.nope=1]}"])
    assert main(["study", str(bad_key)]) == 2
    assert "coded.nope" in capsys.readouterr().err
    assert not (tmp_path / "studies").exists()
    assert main(["study", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    loaded = load_study(write_study(tmp_path, ["  - {name: ok, recipe: simclr-digits}"]))
    assert loaded.seeds == [0, 1] and loaded.rows[0].overrides == []


def test_rows_that_would_share_a_folder_are_refused(tmp_path, capsys):
    path = write_study(
        tmp_path,
        ["  - {name: SimCLR + coded, recipe: simclr-digits}", "  - {name: SimCLR coded, recipe: simclr-digits}"],
    )
    assert main(["study", str(path)]) == 2
    assert "shared; rename it" in capsys.readouterr().err


def test_effects_pair_each_row_with_its_baseline_by_seed(tmp_path):
    import math

    from scipy.stats import t as student_t

    from ssl_coded.study import study_root, summarise

    path = write_study(
        tmp_path,
        ["  - {name: base, recipe: simclr-digits}", "  - {name: coded, recipe: simclr-digits, baseline: base}"],
    )
    path.write_text(path.read_text() + "headline: [coded]\n")
    study = load_study(path)
    study.seeds = [0, 1, 2]
    assert study.rows[0].seeds is None
    root = study_root(study)
    base = {0: 0.80, 1: 0.70, 2: 0.90}  # seed-to-seed spread far above the effect
    gains = {0: 0.010, 1: 0.020, 2: 0.015}
    for seed in study.seeds:
        for row, acc, seconds in (("base", base[seed], 100.0), ("coded", base[seed] + gains[seed], 150.0 + seed)):
            cell = {"knn_dino_top1": acc, "seconds": seconds, "eval_seconds": 5.0, "peak_mb": 900.0}
            (root / row).mkdir(parents=True, exist_ok=True)
            (root / row / f"seed{seed}.json").write_text(json.dumps(cell))
    (root / "coded" / "seed1.json").unlink()  # unpaired seeds are left out, not compared with another seed's run
    gains.pop(1)
    summarise(study, root)
    effect = list(csv.DictReader((root / "effects.csv").open()))
    assert len(effect) == 1 and effect[0]["row"] == "coded" and effect[0]["seeds"] == "2"
    diffs = list(gains.values())
    mean, std = sum(diffs) / 2, math.sqrt(sum((d - sum(diffs) / 2) ** 2 for d in diffs))
    assert math.isclose(float(effect[0]["knn_dino_top1_delta"]), mean, rel_tol=1e-9)
    assert math.isclose(float(effect[0]["knn_dino_top1_std"]), std, rel_tol=1e-9)
    p_closed_form = 2 * student_t.sf(abs(mean / (std / math.sqrt(2))), df=1)
    assert math.isclose(float(effect[0]["knn_dino_top1_p"]), p_closed_form, rel_tol=1e-6)
    assert math.isclose(float(effect[0]["time_ratio"]), 151.0 / 100.0)  # medians of seeds 0 and 2
    assert "| coded | base | 2 | +1.25 +- 0.35" in (root / "effects.md").read_text()
    headline = (root / "headline.md").read_text()
    assert "| coded | 2 | 0.8625 +- 0.0742 |" in headline and "| base |" not in headline


def test_training_times_are_compared_only_between_cells_on_the_same_cpu(tmp_path):
    from ssl_coded.study import study_root, summarise

    rows = ["  - {name: base, recipe: simclr-digits}", "  - {name: coded, recipe: simclr-digits, baseline: base}"]
    study = load_study(write_study(tmp_path, rows))
    study.seeds = [0, 1, 2]
    root = study_root(study)
    # seed 2's coded cell ran later on a machine four times as fast: its time says nothing about the cost
    cpus = {
        ("base", 0): "A",
        ("coded", 0): "A",
        ("base", 1): "A",
        ("coded", 1): "A",
        ("base", 2): "A",
        ("coded", 2): "B",
    }
    times = {("base", 0): 100.0, ("coded", 0): 200.0, ("base", 1): 110.0, ("coded", 1): 230.0, ("base", 2): 90.0}
    times[("coded", 2)] = 45.0
    for (row, seed), cpu in cpus.items():
        cell = {"knn_dino_top1": 0.5, "seconds": times[row, seed], "cpu": cpu}
        (root / row).mkdir(parents=True, exist_ok=True)
        (root / row / f"seed{seed}.json").write_text(json.dumps(cell))
    summarise(study, root)
    effect = next(csv.DictReader((root / "effects.csv").open()))
    assert effect["seeds"] == "3"  # the accuracies still pair on every seed
    assert math.isclose(float(effect["time_ratio"]), (200.0 + 230.0) / 2 / ((100.0 + 110.0) / 2))
    (root / "coded" / "seed0.json").write_text(json.dumps({"knn_dino_top1": 0.5, "seconds": 200.0, "cpu": "B"}))
    (root / "coded" / "seed1.json").write_text(json.dumps({"knn_dino_top1": 0.5, "seconds": 230.0, "cpu": "B"}))
    summarise(study, root)
    assert next(csv.DictReader((root / "effects.csv").open()))["time_ratio"] == "nan"
    assert (root / "effects.md").read_text().splitlines()[-1].endswith("| - |")  # no ratio, not a wrong one


def test_one_seed_shows_no_spread_and_no_test():
    from ssl_coded.study import format_effects, format_study

    effect = {"row": "b", "baseline": "a", "seeds": 1, "knn_dino_top1_delta": 0.01, "knn_dino_top1_std": 0.0}
    effect |= {"knn_dino_top1_p": float("nan"), "time_ratio": float("nan")}
    assert format_effects({"b": effect}, ["knn_dino_top1"]).splitlines()[-1] == "| b | a | 1 | +1.00 | - |"
    table = {"b": {"knn_dino_top1": (0.5, 0.0, 1), "seconds": (12.0, 0.0, 1)}}
    assert format_study(table, ["knn_dino_top1", "seconds"]).splitlines()[-1] == "| b | 1 | 0.5000 | 12 |"


@pytest.mark.slow
def test_the_committed_fashion_mnist_tables_are_those_of_its_cells(tmp_path, monkeypatch):
    from pathlib import Path

    from ssl_coded.study import study_root, summarise

    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # results_dir is relative to the repository
    study = load_study("recipes/studies/fashion-mnist.yaml")
    summarise(study, tmp_path)
    for name in ("cells.csv", "results.md", "headline.md", "effects.md"):
        assert (tmp_path / name).read_text() == (study_root(study) / name).read_text(), f"rerun --summary ({name})"


def test_a_baseline_or_headline_must_name_rows(tmp_path, capsys):
    path = write_study(tmp_path, ["  - {name: a, recipe: simclr-digits, baseline: nope}"])
    assert main(["study", str(path)]) == 2
    assert "baseline 'nope'" in capsys.readouterr().err
    path = write_study(
        tmp_path,
        [
            "  - {name: a, recipe: simclr-digits, seeds: [0]}",
            "  - {name: b, recipe: simclr-digits, baseline: a, seeds: [1]}",
        ],
    )
    assert main(["study", str(path)]) == 2
    assert "shares no seed with its baseline" in capsys.readouterr().err
    path = write_study(tmp_path, ["  - {name: a, recipe: simclr-digits}"])
    path.write_text(path.read_text() + "headline: [a, b]\n")
    assert main(["study", str(path)]) == 2
    assert "headline rows ['b']" in capsys.readouterr().err


def test_a_resumed_cell_keeps_its_accuracy_but_not_its_partial_training_time(tmp_path):
    from ssl_coded.study import collect_cells, study_root

    study = load_study(write_study(tmp_path, ["  - {name: a, recipe: simclr-digits}"]))
    (study_root(study) / "a").mkdir(parents=True)
    for seed, resumed in ((0, False), (1, True)):
        cell = {"knn_dino_top1": 0.5 + seed, "seconds": 100.0 - 90 * seed, "resumed": resumed}
        (study_root(study) / "a" / f"seed{seed}.json").write_text(json.dumps(cell))
    cells = collect_cells(study)["a"]
    assert cells[0]["seconds"] == 100.0 and "seconds" not in cells[1] and cells[1]["knn_dino_top1"] == 1.5


def test_a_row_may_run_its_own_seeds(tmp_path):
    from ssl_coded.study import collect_cells, seeds_of, study_root

    rows = ["  - {name: a, recipe: simclr-digits}", "  - {name: b, recipe: simclr-digits, seeds: [0]}"]
    study = load_study(write_study(tmp_path, rows))
    assert [seeds_of(study, row) for row in study.rows] == [[0, 1], [0]]
    for row in ("a", "b"):
        (study_root(study) / row).mkdir(parents=True)
        for seed in (0, 1):
            (study_root(study) / row / f"seed{seed}.json").write_text(json.dumps({"knn_dino_top1": 0.5}))
    cells = collect_cells(study)
    assert sorted(cells["a"]) == [0, 1] and sorted(cells["b"]) == [0]  # b's stray seed 1 is not its cell


def test_a_classifier_cell_records_train_and_test_accuracy_where_and_how_it_ran(tmp_path):
    from ssl_coded.study import run_cell

    quick = ["trainer.max_epochs=2", "trainer.batch_size=64", "data.max_train=256", "trainer.precision=32-true"]
    cell = run_cell("supervised-digits", [*quick, "eval.floors=false"], tmp_path / "sup" / "seed0", [], "lbfgs")
    summary = json.loads((tmp_path / "sup" / "seed0" / "summary.json").read_text())
    assert cell["test_accuracy"] == summary["test_accuracy"] and cell["train_accuracy"] == summary["train_accuracy"]
    assert cell["generalization_gap"] == pytest.approx(cell["train_accuracy"] - cell["test_accuracy"])
    assert cell["best_val"] == summary["best_val_accuracy"]  # the only figure a sweep may be chosen by
    assert cell["precision"] == "32-true" and "cores" in cell["cpu"]
    assert not any(key.startswith("knn") for key in cell)  # no protocols: no encoder evaluation


def test_a_row_and_its_baseline_at_different_precisions_are_not_compared(tmp_path):
    from ssl_coded.study import study_root, summarise

    rows = ["  - {name: base, recipe: simclr-digits}", "  - {name: coded, recipe: simclr-digits, baseline: base}"]
    study = load_study(write_study(tmp_path, rows))
    for row, precision in (("base", "32-true"), ("coded", "bf16-mixed")):
        (study_root(study) / row).mkdir(parents=True)
        for seed in (0, 1):
            cell = {"knn_dino_top1": 0.5, "seconds": 1.0, "precision": precision}
            (study_root(study) / row / f"seed{seed}.json").write_text(json.dumps(cell))
    with pytest.raises(ValueError, match=r"'coded' ran at \['bf16-mixed'\] and its baseline 'base' at \['32-true'\]"):
        summarise(study, study_root(study))


def test_a_cell_that_would_train_in_another_precision_than_its_baseline_is_refused_before_it_starts(tmp_path):
    from ssl_coded.study import study_root

    rows = ["  - {name: base, recipe: simclr-digits}", "  - {name: coded, recipe: simclr-digits, baseline: base}"]
    path = write_study(tmp_path, rows)
    path.write_text(path.read_text().replace("common: [", "common: [trainer.precision=32, "))
    study = load_study(path)
    for seed in (0, 1):  # the baseline finished elsewhere, in bf16
        (study_root(study) / "base").mkdir(parents=True, exist_ok=True)
        cell = {"knn_dino_top1": 0.5, "seconds": 1.0, "precision": "bf16-mixed"}
        (study_root(study) / "base" / f"seed{seed}.json").write_text(json.dumps(cell))
    with pytest.raises(ValueError, match=r"'coded' ran at \['32-true'\]"):  # "32" is Lightning's alias of 32-true
        run_study(path)
    assert not (tmp_path / "studies" / "tiny" / "coded").exists()  # nothing trained


def test_answers_read_each_method_against_its_control_and_noise(tmp_path):
    import statistics

    from ssl_coded.study import study_root, summarise

    rows = [f"  - {{name: {name}, recipe: simclr-digits{', baseline: ' + base if base else ''}}}"
            for name, base in (("A", ""), ("A + i-Mix", "A"), ("A + coded", "A"), ("A + random mixing", "A"),
                               ("B", ""), ("B + coded", "B"))]  # fmt: skip
    path = write_study(tmp_path, rows)
    path.write_text(path.read_text() + "answer: {metric: knn_instdisc_top1}\n")
    study = load_study(path)
    study.seeds = [0, 1, 2]
    root = study_root(study)
    base = {"A": [0.90, 0.91, 0.92], "B": [0.80, 0.85, 0.90]}
    gains = {"A + i-Mix": [0.05, 0.04, 0.06], "A + coded": [0.020, 0.021, 0.019], "A + random mixing": [0, 0, 0.01],
             "B + coded": [-0.01, 0.02, -0.005]}  # fmt: skip
    cells = {
        **base,
        **{name: [b + g for b, g in zip(base[name[0]], gain, strict=True)] for name, gain in gains.items()},
    }
    for name, values in cells.items():
        (root / slug(name)).mkdir(parents=True, exist_ok=True)
        for seed, value in enumerate(values):
            cell = {"knn_instdisc_top1": value, "seconds": 100.0 + 10 * ("coded" in name)}
            (root / slug(name) / f"seed{seed}.json").write_text(json.dumps(cell))
    summarise(study, root)
    lines = (root / "answers.md").read_text().splitlines()
    assert lines[0].startswith("| method | seeds | knn_instdisc_top1 (points) | i-Mix | control separates? | coded |")
    a, b = lines[2].split(" | "), lines[3].split(" | ")
    assert a[0] == "| A" and a[2] == f"91.00 +- {100 * statistics.stdev(base['A']):.2f}"
    assert a[4] == "yes" and a[5].startswith("+2.00 +- 0.10") and a[7] == "1.10" and a[8] == "helps |"
    assert b[0] == "| B" and b[3] == "-" and b[4] == "-" and b[8] == "within noise |"  # B has no control row


def test_a_cell_attacks_its_probe_when_the_study_asks(tmp_path):
    from ssl_coded.study import Study, StudyRobust, StudyRow, accuracies_of, lacks_robust, run_cell
    from ssl_coded.training.config import ConfigError

    robust = {"eps": [0.05, 0.3], "examples": 10, "steps": 2, "square_queries": 5, "standard": False}
    out = tmp_path / "simclr" / "seed0"
    cell = run_cell("simclr-digits", [*QUICK, "trainer.precision=32-true"], out, ["knn"], "lbfgs", robust)
    report = json.loads((out / "robust" / "attack.json").read_text())["results"]["encoder + linear probe"]
    assert cell["robust_clean"] == report["clean"]
    assert cell["robust_0.05"] == report["eps"]["0.05"]["adaptive"] and cell["robust_0.3"] <= report["clean"]
    again = run_cell("simclr-digits", [*QUICK, "trainer.precision=32-true"], out, ["knn"], "lbfgs", robust)
    assert again["robust_0.05"] == cell["robust_0.05"]  # the report already there is read, not redone or refused
    with pytest.raises(ConfigError, match="holds a robustness report with other settings"):
        run_cell("simclr-digits", [*QUICK, "trainer.precision=32-true"], out, ["knn"], "lbfgs", robust | {"steps": 3})
    study = Study("s", [StudyRow("a", "simclr-digits")], robust=StudyRobust(eps=[0.05, 0.3]))
    assert accuracies_of(study)[-3:] == ("robust_clean", "robust_0.05", "robust_0.3")  # paired like the others
    finished = tmp_path / "seed0.json"
    finished.write_text(json.dumps({"knn_dino_top1": 0.9}))  # a cell finished before the study asked for robustness
    assert lacks_robust(study, finished) and not lacks_robust(study, out / "cell.json")


def test_a_bad_robust_section_is_refused_before_any_training(tmp_path, capsys):
    path = write_study(tmp_path, ["  - {name: SimCLR, recipe: simclr-digits}"])
    path.write_text(path.read_text() + "robust: {eps: [0.05, 2.0]}\n")
    assert main(["study", str(path)]) == 2
    assert "robust.eps must be in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "studies").exists()
