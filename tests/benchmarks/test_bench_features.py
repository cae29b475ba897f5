import statistics

import pytest

from benchmarks.bench_features import run_features_benchmark


@pytest.mark.slow
def test_feature_benchmark_compares_per_round_and_checks_the_features(capsys):
    result = run_features_benchmark(images=64, image_size=16, batch_size=32, rounds=3, device="cpu")
    per_round = [p / o for p, o in zip(result["plain"], result["ours"], strict=True)]
    assert result["ratio"] == pytest.approx(statistics.median(per_round)) and len(per_round) == 3
    assert result["agree"] and result["device"] == "cpu"
    assert "vs plain loop" in capsys.readouterr().out
