import json
import os

import pytest

from benchmarks.bench_knn import memory_peaks, run_knn_benchmark
from ssl_coded.cli import main

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]


@pytest.mark.slow
def test_benchmark_rows_agree_with_the_reference_and_are_written(tmp_path, capsys):
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "name=run"]) == 0
    rows = run_knn_benchmark(1500, 200, 32, k=50, repeats=1, run=str(tmp_path / "run"), out_dir=tmp_path / "bench")
    by_method = {(r.part.split()[0], r.method): r for r in rows}
    for exact in ("torch fp32 brute force (reference)", "ssl-coded exact", "FAISS IndexFlatIP", "lightly knn_predict"):
        assert by_method[("random", exact)].agreement == 1.0, exact
    assert by_method[("random", "scikit-learn KNeighborsClassifier")].agreement >= 0.99  # float64 cosine distances
    ivf = [r for r in rows if r.method.startswith("FAISS IVF nprobe")]
    assert len(ivf) == 3 and all(0.0 < r.agreement <= 1.0 and "neighbour recall@50" in r.note for r in ivf)
    assert [r.agreement for r in rows if r.method == "FAISS IndexFlatIP" and r.part != rows[0].part] == [1.0]
    probe = {r.method: r.agreement for r in rows if "linear probe" in r.part}
    assert abs(probe["ssl-coded linear probe"] - probe["scikit-learn LogisticRegression"]) < 0.1
    saved = json.loads((tmp_path / "bench" / "bench-knn.json").read_text())
    assert len(saved["rows"]) == len(rows)
    assert (tmp_path / "bench" / "bench-knn.png").read_bytes()[:4] == b"\x89PNG"
    assert "speed vs lightly" in capsys.readouterr().out


def test_random_part_prints_the_calibrations_choice_and_interleaved_ratios(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSL_CODED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SSL_CODED_KNN_BACKEND", "fp32")  # what the calibration chose, without timing it here
    rows = run_knn_benchmark(900, 60, 16, k=20, repeats=2, out_dir=tmp_path / "bench", sklearn=False, memory=False)
    random = {r.method: r for r in rows if r.part.startswith("random")}
    for exact in ("torch fp32 brute force (reference)", "ssl-coded exact", "FAISS IndexFlatIP", "lightly knn_predict"):
        assert random[exact].agreement == 1.0, exact
        assert random[exact].speed_vs_lightly > 0, exact
    assert random["lightly knn_predict"].speed_vs_lightly == 1.0  # a row against itself, round by round
    assert "calibration's choice" in random["ssl-coded exact"].note and "fp32 product" in random["ssl-coded exact"].note
    out = capsys.readouterr().out
    assert "calibration: " in out and "kNN backend fp32" in out and "SSL_CODED_KNN_BACKEND=fp32" in out
    saved = json.loads((tmp_path / "bench" / "bench-knn.json").read_text())
    assert saved["calibration"]["knn_backend"] == "fp32" and saved["calibration"]["fp32_gflops"] > 0
    # the search against its floor: the faster product, and the product plus the answers' fp32 re-rank
    assert {"ssl-coded exact search alone", "fp32 re-rank of the 20 answer rows alone"} <= set(random)
    assert "the faster orientation of (queries, bank)" in random["bfloat16 matrix product alone"].note
    floor = saved["floor"]
    assert floor.startswith("exact search: ") and "the faster matrix product of its shape" in floor
    assert floor in out


@pytest.mark.slow
@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="the peak-memory probe reads Linux's /proc")
@pytest.mark.parametrize("backend", ["fp32", "bf16"])
def test_peak_memory_covers_what_each_index_must_hold(tmp_path, monkeypatch, backend):
    """The measured peaks against byte counts from the shapes: the exact index keeps a normalised fp32
    copy of the bank (and a bf16 one on the bf16 path) plus the scores of its 600 queries; FAISS's flat index
    copies the bank. Upper bounds with room for the search's temporaries, less than one more copy of the bank."""
    monkeypatch.setenv("SSL_CODED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SSL_CODED_KNN_BACKEND", backend)
    num_bank, dim = 10_000, 8192  # the bank's copies outweigh the score buffer
    peaks = memory_peaks(num_bank, 600, dim, 50)
    mib = 2**20
    fp32_copy = num_bank * dim * 4 / mib
    if backend == "bf16":
        exact = fp32_copy + num_bank * dim * 2 / mib + 600 * num_bank * 2 / mib
    else:
        exact = fp32_copy + 600 * num_bank * 4 / mib
    # one more fp32 copy of the bank (a normalised or centred temporary) would break the upper bound
    assert 0.9 * exact <= peaks["ssl-coded exact"] <= exact + 0.9 * fp32_copy, (peaks, exact)
    assert 0.9 * fp32_copy <= peaks["FAISS IndexFlatIP"] <= 4 * fp32_copy + 64, peaks
    assert set(peaks) == {
        "ssl-coded exact",
        "FAISS IndexFlatIP",
        "lightly knn_predict",
        "torch fp32 brute force (reference)",
    }
