import csv
import json

from ssl_coded.eval.study import load_study, run_study

from ssl_coded.cli import main

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
    assert summary["floors"] == {}  # eval.floors=false: computed once per study, not per cell
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
