import statistics

import pytest

from benchmarks.bench_precision import run_precision_benchmark
from ssl_coded.search import calibration


def test_precision_benchmark_reports_medians_of_interleaved_rounds(monkeypatch, capsys):
    monkeypatch.setattr(calibration, "bf16_training", lambda: False)
    result = run_precision_benchmark("simclr-digits", batch_size=8, rounds=3)
    rounds = result["rounds"]
    assert len(rounds["fp32"]) == len(rounds["bf16 autocast"]) == 3 and min(rounds["fp32"]) > 0
    assert result["fp32"] == statistics.median(rounds["fp32"])
    per_round = [b / f for b, f in zip(rounds["bf16 autocast"], rounds["fp32"], strict=True)]
    assert result["ratio"] == pytest.approx(statistics.median(per_round))  # not the ratio of the medians
    assert "trains as: 32-true" in capsys.readouterr().out
