import json
import os

import pytest
import torch

from ssl_coded.search import calibration
from ssl_coded.search.calibration import Calibration

SLOW_BF16 = Calibration(100.0, 30.0, 50.0, 20.0)  # emulated bf16: a third of fp32's speed
FAST_BF16 = Calibration(100.0, 300.0, 50.0, 150.0)
FAST_PRODUCTS_SLOW_CONVS = Calibration(100.0, 300.0, 50.0, 40.0)
MACHINE_BUSY = calibration.machine_busy  # the real one: the fixture below replaces it in every test


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """A fresh cache folder, no overrides and nothing remembered: the real home cache is never touched."""
    monkeypatch.setenv("SSL_CODED_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("SSL_CODED_BF16", "SSL_CODED_KNN_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(calibration, "machine_busy", lambda: False)  # whatever else runs beside the tests
    calibration.forget()
    yield
    calibration.forget()


@pytest.fixture
def measured(monkeypatch):
    """measure() replaced by a counter returning injected figures (no timing in tests)."""
    calls = []

    def inject(result):
        def fake(rounds=4):
            calls.append(rounds)
            return result

        monkeypatch.setattr(calibration, "measure", fake)
        return calls

    return inject


def test_bf16_is_chosen_only_where_it_is_measurably_faster():
    assert calibration.decide_knn_backend(SLOW_BF16) == "fp32"
    assert calibration.decide_knn_backend(FAST_BF16) == "bf16"
    at_threshold = Calibration(100.0, 100.0 * calibration.KNN_BF16_MIN_SPEEDUP, 1.0, 1.0)
    just_below = Calibration(100.0, 100.0 * calibration.KNN_BF16_MIN_SPEEDUP - 1, 1.0, 1.0)
    assert calibration.decide_knn_backend(at_threshold) == "bf16"
    assert calibration.decide_knn_backend(just_below) == "fp32"  # a marginal win does not pay the re-rank
    assert not calibration.decide_bf16_training(SLOW_BF16)
    assert calibration.decide_bf16_training(FAST_BF16)
    assert not calibration.decide_bf16_training(FAST_PRODUCTS_SLOW_CONVS)  # a CNN step is mostly convolutions


def test_the_decisions_follow_the_measurement(measured):
    measured(SLOW_BF16)
    assert calibration.knn_backend() == "fp32" and not calibration.bf16_training()
    calibration.forget()
    measured(FAST_BF16)
    assert calibration.calibrate(refresh=True).speedup == pytest.approx(3.0)
    assert calibration.knn_backend() == "bf16" and calibration.bf16_training()


def test_a_measurement_is_cached_and_reused_across_processes(measured):
    calls = measured(FAST_BF16)
    first = calibration.calibrate()
    assert first.source == "measured" and len(calls) == 1
    path = calibration.cache_path()
    saved = json.loads(path.read_text())
    assert saved["key"]["torch"] == torch.__version__ and saved["key"]["cores"] == (os.cpu_count() or 1)
    assert saved["bf16_gflops"] == 300.0
    assert calibration.calibrate() is first  # remembered in this process
    calibration.forget()  # as a new process would: read from the file, not measured again
    again = calibration.calibrate()
    assert again.source == "cache" and again.speedup == first.speedup and len(calls) == 1
    calibration.calibrate(refresh=True)
    assert len(calls) == 2


def test_a_measurement_under_load_is_used_but_not_cached(measured, monkeypatch):
    calls = measured(FAST_BF16)
    monkeypatch.setattr(calibration, "machine_busy", lambda: True)
    assert calibration.calibrate().source == "measured" and not calibration.cache_path().exists()
    calibration.forget()
    monkeypatch.setattr(calibration, "machine_busy", lambda: False)
    calibration.calibrate()  # the next process measures again, and keeps this one
    assert len(calls) == 2 and calibration.cache_path().exists()


def test_busy_means_more_load_than_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 1.0, 1.0))
    assert MACHINE_BUSY()
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    assert not MACHINE_BUSY()


@pytest.mark.parametrize("content", ["", "{not json", "[]", '{"key": 1}', "null"])
def test_a_corrupt_cache_file_is_measured_again(measured, content):
    calls = measured(SLOW_BF16)
    path = calibration.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert calibration.calibrate().source == "measured" and len(calls) == 1
    assert json.loads(path.read_text())["fp32_gflops"] == 100.0  # rewritten whole


def test_a_cache_of_nonsense_figures_is_measured_again(measured):
    calls = measured(SLOW_BF16)
    calibration.calibrate()
    path = calibration.cache_path()
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data | {"bf16_gflops": 0.0}))
    calibration.forget()
    assert calibration.calibrate().source == "measured" and len(calls) == 2


def test_another_torch_version_has_its_own_measurement(measured, monkeypatch):
    calls = measured(SLOW_BF16)
    calibration.calibrate()
    monkeypatch.setattr(torch, "__version__", "0.0.1-other")
    calibration.forget()
    assert calibration.cache_path() != calibration.cache_path(calibration.machine_key() | {"torch": "9"})
    assert calibration.calibrate().source == "measured" and len(calls) == 2
    assert len(list(calibration.cache_dir().glob("calibration-*.json"))) == 2


def test_a_file_whose_key_differs_is_not_trusted(measured):
    calls = measured(FAST_BF16)
    calibration.calibrate()
    path = calibration.cache_path()
    data = json.loads(path.read_text())
    data["key"]["cpu"] = "another CPU"
    path.write_text(json.dumps(data))
    calibration.forget()
    assert calibration.calibrate().source == "measured" and len(calls) == 2


def test_an_unwritable_cache_folder_is_not_fatal(measured, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SSL_CODED_CACHE_DIR", str(blocker / "cache"))  # a folder under a file: cannot exist
    calls = measured(SLOW_BF16)
    assert calibration.knn_backend() == "fp32" and len(calls) == 1


def test_cache_folder_follows_xdg_and_home(monkeypatch, tmp_path):
    monkeypatch.delenv("SSL_CODED_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert calibration.cache_dir() == tmp_path / "xdg" / "ssl-coded"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert calibration.cache_dir() == tmp_path / "home" / ".cache" / "ssl-coded"


def test_overrides_win_without_measuring(measured, monkeypatch):
    calls = measured(SLOW_BF16)
    monkeypatch.setenv("SSL_CODED_BF16", "1")
    assert calibration.knn_backend() == "bf16" and calibration.bf16_training()
    monkeypatch.setenv("SSL_CODED_KNN_BACKEND", "fp32")  # the kNN's own override comes first
    assert calibration.knn_backend() == "fp32" and calibration.bf16_training()
    assert calls == []
    monkeypatch.setenv("SSL_CODED_BF16", "0")
    monkeypatch.setenv("SSL_CODED_KNN_BACKEND", "BF16")
    assert calibration.knn_backend() == "bf16" and not calibration.bf16_training()
    monkeypatch.setenv("SSL_CODED_KNN_BACKEND", "auto")
    assert calibration.knn_backend() == "fp32" and calls == []
    monkeypatch.delenv("SSL_CODED_BF16")
    assert calibration.knn_backend() == "fp32" and len(calls) == 1  # auto: the measurement


@pytest.mark.parametrize(("name", "value"), [("SSL_CODED_BF16", "yes"), ("SSL_CODED_KNN_BACKEND", "faiss")])
def test_an_unknown_override_is_refused_by_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        calibration.knn_backend()


def test_describe_names_the_measurement_and_the_choices(measured, monkeypatch):
    measured(SLOW_BF16)
    line = calibration.describe()
    assert "products 0.30x" in line and "convolutions 0.40x" in line
    assert "kNN backend fp32" in line and "bf16 training off" in line
    monkeypatch.setenv("SSL_CODED_KNN_BACKEND", "bf16")
    assert "kNN backend bf16" in calibration.describe() and "SSL_CODED_KNN_BACKEND=bf16" in calibration.describe()


def test_the_measurement_itself_returns_positive_throughputs():
    # wiring only: real products are timed, their speeds are not asserted
    result = calibration.measure(rounds=1)
    assert min(result.fp32_gflops, result.bf16_gflops, result.fp32_conv_gflops, result.bf16_conv_gflops) > 0
    assert result.source == "measured"
