import statistics

import pytest

from benchmarks.bench_regularizers import run


@pytest.mark.slow
def test_regularizer_costs_are_per_round_ratios_and_the_flops_match_the_extra_passes():
    results = run(rounds=2, batch_size=16)
    for (group, row), result in results.items():
        base = next(r for (g, _), r in results.items() if g == group)  # the group's first row
        per_round = [t / b for t, b in zip(result["seconds"], base["seconds"], strict=True)]
        assert result["ratio"] == pytest.approx(statistics.median(per_round)), row
    flops = {row: result["flop_ratio"] for (_, row), result in results.items()}
    # the closed forms of the extra passes: mixing costs nothing, coding the input with N = K runs the
    # network on K more samples (about 2x), i-Mix adds one view to SimCLR's two (about 1.5x)
    assert flops["mixup"] == pytest.approx(1.0, abs=0.02) and flops["noise"] == pytest.approx(1.0, abs=0.02)
    assert flops["coded (input)"] == pytest.approx(2.0, abs=0.1)
    assert flops["+ i-Mix"] == pytest.approx(1.5, abs=0.05)
    assert 1.0 < flops["+ coded (embedding)"] < 1.1  # only the projection head runs on N coded samples
