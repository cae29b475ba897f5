from benchmarks.bench_overhead import run_overhead_benchmark


def test_overhead_benchmark_runs_and_predicts_the_coded_cost(capsys):
    ratios = run_overhead_benchmark(batch_size=16, image_size=8, coded_ratio=2.0, rounds=3)
    assert ratios["baseline"] == {"ratio": 1.0, "flop_ratio": 1.0}
    assert 1.0 < ratios["embedding"]["flop_ratio"] < ratios["input"]["flop_ratio"]
    # one coded pass of N = 2K samples per two-view step: about 1 + N/(2K) = 2
    assert 1.9 < ratios["input"]["flop_ratio"] < 2.1
    out = capsys.readouterr().out
    assert "measured/FLOP" in out and "closed form" in out
