import statistics

import pytest

from benchmarks.bench_regularizers import run
from tests.data.test_datasets import make_fashion_folder


@pytest.mark.slow
def test_regularizer_costs_are_per_round_ratios_and_the_flops_match_the_extra_passes(tmp_path, monkeypatch):
    # the wiring and the FLOPs depend on the images' shape only: random 28 x 28 IDX files stand in for
    # Fashion-MNIST (its recipes read them from $SSL_CODED_FASHION_MNIST), so no machine needs the data
    monkeypatch.setenv("SSL_CODED_FASHION_MNIST", str(make_fashion_folder(tmp_path, n_train=64, n_test=16)))
    results = run(rounds=2, batch_size=16)
    for (group, row), result in results.items():
        base = next(r for (g, _), r in results.items() if g == group)  # the group's first row
        per_round = [t / b for t, b in zip(result["seconds"], base["seconds"], strict=True)]
        assert result["ratio"] == pytest.approx(statistics.median(per_round)), row
    flops = {key: result["flop_ratio"] for key, result in results.items()}
    # the closed forms of the extra passes: mixing costs nothing, coding the input with N = K runs the
    # network on K more samples (about 2x), i-Mix adds one view to SimCLR's two (about 1.5x)
    assert flops["classifier", "mixup"] == pytest.approx(1.0, abs=0.02)
    assert flops["classifier", "noise"] == pytest.approx(1.0, abs=0.02)
    assert flops["classifier", "coded (input)"] == pytest.approx(2.0, abs=0.1)
    assert flops["SimCLR", "+ i-Mix"] == pytest.approx(1.5, abs=0.05)
    # BYOL: two online forward + backward passes (3 units each) and two target forwards (1 each);
    # i-Mix adds one online forward + backward: 11 / 8
    assert flops["BYOL", "+ i-Mix"] == pytest.approx(11 / 8, abs=0.03)
    for group in ("SimCLR", "BYOL"):  # only the projection head runs on N coded samples
        assert 1.0 < flops[group, "+ coded (embedding)"] < 1.1, group
    # SimCLR's backbone runs on its two views of K; coding its input adds N = 2K coded samples
    assert flops["SimCLR", "+ coded (input)"] == pytest.approx(2.0, abs=0.1)
