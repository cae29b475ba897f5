import json

import numpy as np
import pytest
from ssl_coded.eval.protocols import knn_report
from ssl_coded.eval.report import format_rows
from ssl_coded.eval.settings import EvalSettings

from ssl_coded.cli import main
from ssl_coded.commands import evaluate_encoder
from tests.oracles import brute_force_knn

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]


def test_knn_report_equals_the_brute_force():
    import torch

    generator = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(600, 12, generator=generator), torch.randn(80, 12, generator=generator)
    bank_y, query_y = torch.randint(0, 5, (600,), generator=generator), torch.randint(0, 5, (80,), generator=generator)
    metrics = knn_report(bank.numpy(), bank_y.numpy(), queries.numpy(), query_y.numpy(), 5)
    for preset, (k, temperature) in (("dino", (20, 0.07)), ("instdisc", (200, 0.1))):
        ranked = brute_force_knn(bank.numpy(), bank_y.numpy(), queries.numpy(), 5, k, temperature)
        assert metrics[f"knn_{preset}_top1"] == pytest.approx(np.mean(ranked[:, 0] == query_y.numpy()))
    assert 0 <= metrics["map@r"] <= 1 and metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@10"]


@pytest.mark.slow
def test_evaluate_a_run_with_floors(tmp_path):
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=run"]) == 0
    rows = evaluate_encoder(tmp_path / "run", EvalSettings(device="cpu"))
    assert set(rows) == {"encoder", "random init", "raw pixels"}
    assert rows["raw pixels"]["knn_dino_top1"] > 0.9 and rows["raw pixels"]["linear_top1"] > 0.9  # digits is easy
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["rows"]["encoder"]["linear_top1"] == rows["encoder"]["linear_top1"]
    table = (tmp_path / "run" / "results-eval.md").read_text()
    assert "| run | encoder |" in table and "| raw pixels |" in table
    for picture in ("embedding.png", "retrieval.png", "confusion.png"):
        assert (tmp_path / "run" / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for name, row in summary["rows"].items():  # one kNN path: the run's summary and the evaluation agree
        for metric, value in row.items():
            assert rows[name][metric] == pytest.approx(value, abs=1e-6), (name, metric)
    sgd = evaluate_encoder(tmp_path / "run", EvalSettings(("linear",), floors=False, probe="sgd", device="cpu"))
    assert set(sgd) == {"encoder"} and sgd["encoder"]["linear_sgd_top1"] > 0.5  # ten classes: chance is 0.1


def test_format_rows_has_a_row_per_run_and_encoder():
    table = format_rows({"a": {"encoder": {"x": 0.5}}, "b": {"encoder": {"x": 0.25}, "raw pixels": {"y": 1.0}}})
    lines = table.splitlines()
    assert len(lines) == 5 and lines[0] == "| run | encoder | x | y |" and "| b | raw pixels | - | 1.0000 |" in lines
    assert np.isclose(float(lines[2].split("|")[3]), 0.5)


@pytest.mark.slow
def test_eval_command_compares_runs_in_one_table(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", f"name={name}"]) == 0
    capsys.readouterr()
    assert main(["eval", "knn", str(tmp_path / "a"), str(tmp_path / "b"), "--no-floors"]) == 0
    out = capsys.readouterr().out
    assert "| a | encoder |" in out and "| b | encoder |" in out and "raw pixels" not in out
    assert main(["eval", "knn", str(tmp_path / "missing")]) == 2
    assert "neither a run directory nor a checkpoint" in capsys.readouterr().err


def test_ivf_reports_its_recall_and_agreement_with_exact():
    import torch

    generator = torch.Generator().manual_seed(4)
    centers = torch.randn(5, 16, generator=generator) * 4
    bank_y = torch.arange(5).repeat(400)
    bank = centers[bank_y] + torch.randn(2000, 16, generator=generator)
    query_y = torch.arange(5).repeat(20)
    queries = centers[query_y] + torch.randn(100, 16, generator=generator)
    exact = knn_report(bank.numpy(), bank_y.numpy(), queries.numpy(), query_y.numpy(), 5)
    ivf = knn_report(bank.numpy(), bank_y.numpy(), queries.numpy(), query_y.numpy(), 5, index_kind="ivf")
    assert "ann_neighbour_recall@20" not in exact
    assert 0.0 < ivf["ann_neighbour_recall@20"] <= 1.0 and ivf["ann_top1_agreement"] >= 0.95
    assert abs(ivf["knn_dino_top1"] - exact["knn_dino_top1"]) <= 0.05


def test_a_protocol_run_again_with_other_settings_replaces_its_figures_and_keeps_the_old_file(tmp_path):
    from ssl_coded.eval.report import accumulate

    path = tmp_path / "results.json"
    record = {"data": {"name": "digits"}}
    first = {"fewshot": {"fractions": [0.01, 0.1], "metrics": ["fewshot1_top1", "fewshot10_top1"]}}
    first["knn"] = {"index": "exact", "metrics": ["knn_top1"]}
    rows = {"encoder": {"fewshot1_top1": 0.5, "fewshot10_top1": 0.8, "knn_top1": 0.9}, "raw pixels": {"knn_top1": 0.7}}
    accumulate(path, rows, first, record, {"encoder": {"fewshot": {"draws": [1, 2]}}})
    # the same settings again, for the encoder alone: merged, the floor's figures kept
    accumulate(path, {"encoder": {"knn_top1": 0.91}}, {"knn": first["knn"]}, record)
    saved = json.loads(path.read_text())
    assert saved["rows"]["raw pixels"]["knn_top1"] == 0.7 and saved["rows"]["encoder"]["knn_top1"] == 0.91
    assert not list(tmp_path.glob("results-*.json"))
    # fewshot again at 5% only: the 1% and 10% figures and details go, the earlier file is copied aside first
    again = {"fewshot": {"fractions": [0.05], "metrics": ["fewshot5_top1"]}}
    accumulate(path, {"encoder": {"fewshot5_top1": 0.6}}, again, record)
    saved = json.loads(path.read_text())
    assert set(saved["rows"]["encoder"]) == {"fewshot5_top1", "knn_top1"}
    assert "details" not in saved and saved["protocols"]["fewshot"]["fractions"] == [0.05]
    (aside,) = tmp_path.glob("results-*.json")
    assert json.loads(aside.read_text())["rows"]["encoder"]["fewshot10_top1"] == 0.8  # nothing lost
