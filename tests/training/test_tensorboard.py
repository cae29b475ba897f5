"""`trainer.logger=tensorboard`: TensorBoard's event files beside the CSV (which the run's summary and
curves read), with the same scalars; refused in one line, before the run directory, without the extra."""

import csv
import importlib.util

import pytest

from ssl_coded.cli import main
from tests.training.test_loop import QUICK


def test_tensorboard_logs_the_same_scalars_as_the_csv(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = [*QUICK, "trainer.max_epochs=2", f"out_dir={tmp_path}", "name=run", "trainer.logger=tensorboard"]
    assert main(["pretrain", "simclr-digits", *overrides]) == 0
    run = tmp_path / "run"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    events = EventAccumulator(str(run / "tensorboard" / "version_0")).Reload()
    for tag in ("train_loss", "val_knn_top1"):
        logged = [float(r[tag]) for r in rows if r.get(tag)]
        assert logged and [e.value for e in events.Scalars(tag)] == pytest.approx(logged, rel=1e-6), tag
    assert (run / "summary.json").is_file() and (run / "curves.png").is_file()


def test_without_tensorboard_the_logger_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else find_spec(name, *a)
    )
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "trainer.logger=tensorboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'ssl-coded[tensorboard]'" in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())
    assert main(["pretrain", "simclr-digits", f"out_dir={tmp_path}", "trainer.logger=wandb"]) == 2
    assert "trainer.logger='wandb' is not one of csv, tensorboard" in capsys.readouterr().err
