import pytest

from benchmarks.bench_precision import run_precision_benchmark
from ssl_coded import hardware


def test_precision_benchmark_times_both_and_names_the_fallback(monkeypatch, capsys):
    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    result = run_precision_benchmark("simclr-digits", batch_size=8, rounds=1)
    assert result["fp32"] > 0 and result["bf16 autocast"] > 0
    assert result["ratio"] == pytest.approx(result["bf16 autocast"] / result["fp32"])  # one round: the plain ratio
    assert "trains as: 32-true" in capsys.readouterr().out
