from benchmarks.bench_decoders import run


def test_the_mixing_decoder_is_bounded_now_and_was_not_before():
    results = run(draws=5, batch=32)
    assert len(results) == 8
    now, before = results["N = 1K, random mixing"], results["N = 1K, random mixing, t ~ U(0, 1) (before)"]
    # Varah's bound for the dominant-part draws: norm_inf(D) <= 1 / min(1 - 2t), finite on every draw
    assert now["norm_max"] < before["norm_median"]
    for row in results.values():
        assert row["norm_median"] <= row["norm_max"] and row["cond_median"] >= 1.0
    # the interpolants are exact where they must be: D @ E = I for Berrut at N = K gives norm_inf(D) >= 1
    assert results["N = 1K, berrut"]["norm_median"] >= 1.0
