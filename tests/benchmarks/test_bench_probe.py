import json
import statistics

import pytest

from benchmarks.bench_probe import main, mixture_features


def test_mixture_features_are_encoder_like_and_seeded():
    splits = mixture_features(300, 100, dim=16, classes=4)
    (train_x, train_y), (test_x, _) = splits["train"], splits["test"]
    assert train_x.shape == (300, 16) and test_x.shape == (100, 16) and train_x.min() >= 0
    assert set(train_y.tolist()) == {0, 1, 2, 3}
    assert (mixture_features(300, 100, dim=16, classes=4)["val"][0] == splits["val"][0]).all()


def test_benchmark_times_both_and_reports_the_accuracy_at_the_chosen_c(tmp_path, capsys):
    out = tmp_path / "bench"
    result = main(["--num-train", "600", "--num-eval", "200", "--dim", "16", "--rounds", "2", "--out-dir", str(out)])
    seconds = result["seconds"]
    assert len(seconds["probe"]) == len(seconds["sklearn C=1 fit"]) == 2 and min(seconds["probe"]) > 0
    per_round = [p / s for p, s in zip(seconds["probe"], seconds["sklearn C=1 fit"], strict=True)]
    assert result["ratio"] == pytest.approx(statistics.median(per_round))  # not the ratio of the medians
    probe, reference = result["probe"], result["sklearn_at_chosen_c"]
    assert reference["c"] == probe["best_c"] and 0.3 < probe["test_top1"] <= 1.0
    assert abs(result["top1_delta_points"]) < 2.0  # 200 test samples: one or two predictions may differ
    assert result["grid"]["best_c"] in (0.001, 0.01, 0.1, 1.0, 10.0, 100.0) and result["grid"]["seconds"] > 0
    saved = json.loads((out / "bench-probe.json").read_text())
    assert saved["ratio"] == result["ratio"] and saved["machine"]["cpu"]
    table = (out / "bench-probe.md").read_text()
    assert "vs one scikit-learn fit" in table and "previous probe" in table
    assert "target <= 1.5x" in capsys.readouterr().out


def test_benchmark_reads_features_from_an_npz_and_can_skip_the_grid(tmp_path):
    import numpy as np

    splits = mixture_features(300, 100, dim=8, classes=3, seed=1)
    path = tmp_path / "features.npz"
    np.savez(path, **{f"{s}_{part}": a for s, pair in splits.items() for part, a in zip("xy", pair, strict=True)})
    result = main(["--features", str(path), "--rounds", "1", "--no-grid", "--out-dir", str(tmp_path / "b")])
    assert result["grid"] is None and result["label"] == "features.npz"
    assert result["shape"]["train"] == [300, 8] and result["classes"] == 3
    assert "previous probe" not in (tmp_path / "b" / "bench-probe.md").read_text()
