import statistics

import pytest

from benchmarks.bench_overhead import run_overhead_benchmark


@pytest.mark.slow
def test_overhead_benchmark_reports_per_round_ratios_and_the_closed_form_cost(capsys):
    ratios = run_overhead_benchmark(batch_size=16, image_size=8, coded_ratio=2.0, rounds=3)
    base = ratios["baseline"]["seconds"]
    assert len(base) == 3 and all(t > 0 for t in base)
    for name, row in ratios.items():  # the reported ratio is the median of the per-round ratios
        per_round = [t / b for t, b in zip(row["seconds"], base, strict=True)]
        assert row["ratio"] == pytest.approx(statistics.median(per_round)), name
    assert 1.0 < ratios["embedding"]["flop_ratio"] < ratios["input"]["flop_ratio"]
    # one coded pass of N = 2K samples per two-view step: about 1 + N/(2K) = 2 (the closed form)
    assert 1.9 < ratios["input"]["flop_ratio"] < 2.1
    out = capsys.readouterr().out
    assert "measured/FLOP" in out and "closed form" in out
