import csv
import json

import pytest

from ssl_coded.cli import main


def test_demo_writes_a_complete_run_directory(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--epochs", "2", "--out", str(out)]) == 0
    for name in ("config.json", "metrics.csv", "summary.json", "loss.png", "results.md"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    expected = [(placement, str(epoch)) for placement in ("off", "embedding", "input") for epoch in (1, 2)]
    assert [(r["placement"], r["epoch"]) for r in rows] == expected
    assert float(rows[0]["penalty"]) == 0.0 and float(rows[2]["penalty"]) > 0.0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["runs"]) == {"off", "embedding", "input"}
    assert 0.0 <= summary["runs"]["input"]["knn_dino"] <= 1.0
    assert "| SimCLR + coded (input) |" in capsys.readouterr().out


def test_bad_option_is_a_one_line_error_with_exit_status_2(tmp_path, capsys):
    assert main(["demo", "--epochs", "1", "--kind", "chebfun", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown coding family 'chebfun'" in err and "choose one of" in err


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0 and "--coded-ratio" in capsys.readouterr().out
