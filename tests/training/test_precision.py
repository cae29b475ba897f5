import json

import pytest
import pytorch_lightning as pl
import yaml

from ssl_coded.cli import main
from ssl_coded.search import calibration, hardware
from ssl_coded.training.loop import pretrain
from ssl_coded.training.precision import FALLBACK_WARNING, training_precision, trains_on_cpu
from ssl_coded.training.recipes import load_config


@pytest.fixture
def without_native_bf16(monkeypatch):
    monkeypatch.setattr(calibration, "bf16_training", lambda: False)


def test_bf16_autocast_becomes_fp32_on_a_cpu_without_native_bf16(without_native_bf16):
    assert training_precision("bf16-mixed", "cpu") == "32-true"
    assert training_precision("bf16-true", "cpu") == "bf16-true"  # an explicit dtype, not autocast: kept
    for alias in ("bf16", "16-mixed", "16"):  # Lightning runs all of them as bf16 autocast on a CPU
        assert training_precision(alias, "cpu") == "32-true"
    assert training_precision("16-true", "cpu") == "16-true"
    assert training_precision("bf16-mixed", "cuda") == "bf16-mixed"
    assert training_precision("bf16-mixed", "gpu") == "bf16-mixed"  # accelerators do bf16 natively


def test_native_bf16_keeps_the_recipe(monkeypatch):
    monkeypatch.setattr(calibration, "bf16_training", lambda: True)
    assert training_precision("bf16-mixed", "cpu") == "bf16-mixed"


@pytest.mark.parametrize(("flag", "measured_fast", "kept"), [(True, False, False), (False, True, True)])
def test_the_measurement_decides_not_the_cpu_flag(monkeypatch, tmp_path, flag, measured_fast, kept):
    # a CPU that reports bf16 instructions yet multiplies bf16 slower than fp32, and the reverse
    monkeypatch.setenv("SSL_CODED_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SSL_CODED_BF16", raising=False)
    monkeypatch.setattr(hardware, "native_bf16", lambda: flag)
    speed = 300.0 if measured_fast else 30.0
    monkeypatch.setattr(calibration, "measure", lambda rounds=4: calibration.Calibration(100.0, speed, 100.0, speed))
    calibration.forget()
    try:
        assert training_precision("bf16-mixed", "cpu") == ("bf16-mixed" if kept else "32-true")
    finally:
        calibration.forget()


def test_the_override_decides_without_measuring(monkeypatch, tmp_path):
    monkeypatch.setenv("SSL_CODED_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(calibration, "measure", lambda rounds=4: pytest.fail("measured despite the override"))
    monkeypatch.setenv("SSL_CODED_BF16", "1")
    assert training_precision("bf16-mixed", "cpu") == "bf16-mixed"
    monkeypatch.setenv("SSL_CODED_BF16", "0")
    assert training_precision("bf16-mixed", "cpu") == "32-true"
    assert "SSL_CODED_BF16=1" in FALLBACK_WARNING  # the warning names the way out


def test_auto_means_the_cpu_only_without_an_accelerator(monkeypatch):
    from pytorch_lightning.accelerators import CUDAAccelerator, MPSAccelerator, XLAAccelerator

    for accelerator in (CUDAAccelerator, MPSAccelerator, XLAAccelerator):
        monkeypatch.setattr(accelerator, "is_available", staticmethod(lambda: False))
    assert trains_on_cpu("auto") and trains_on_cpu("cpu")
    assert not any(map(trains_on_cpu, ("gpu", "cuda", "mps", "tpu")))
    for accelerator in (MPSAccelerator, CUDAAccelerator):
        monkeypatch.setattr(accelerator, "is_available", staticmethod(lambda: True))
        assert not trains_on_cpu("auto")


class RecordPrecision(pl.Callback):
    def __init__(self) -> None:
        self.used: list[str] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.used.append(trainer.precision)


@pytest.mark.slow
def test_the_run_records_the_precision_it_trained_in(without_native_bf16, tmp_path, capsys):
    quick = ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.batch_size=32", "eval.bank_size=128"]
    overrides = [*quick, "trainer.precision=bf16-mixed", "trainer.accelerator=cpu", f"out_dir={tmp_path}", "name=run"]
    record = RecordPrecision()
    pretrain(load_config("simclr-digits", overrides), callbacks=[record])
    assert record.used == ["32-true"]  # what the Trainer ran, not only what the files say
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert recorded["trainer"]["precision"] == "32-true"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["precision"] == "32-true" and summary["precision_asked"] == "bf16-mixed"
    assert capsys.readouterr().err.count(FALLBACK_WARNING) == 1


def test_bad_input_stays_one_line_without_native_bf16(without_native_bf16, tmp_path, capsys):
    overrides = ["trainer.precision=bf16-mixed", "data.name=fashion-mnist", f"data.root={tmp_path / 'none'}"]
    assert main(["pretrain", "simclr-digits", *overrides, f"out_dir={tmp_path}"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
