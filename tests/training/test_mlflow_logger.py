"""trainer.logger=mlflow: the run's metrics and run.json's provenance in a local MLflow file store."""

import importlib.util
import json

import pytest

from ssl_coded.cli import main

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]


def test_without_mlflow_the_option_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert main(["pretrain", "simclr-digits", "trainer.logger=mlflow", f"out_dir={tmp_path}", "name=x"]) == 2
    assert "pip install 'ssl-coded[mlflow]'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_refused_run_leaves_no_mlflow_store(tmp_path, capsys):
    pytest.importorskip("mlflow")
    too_big = ["trainer.batch_size=4000", "trainer.logger=mlflow", f"out_dir={tmp_path}", "name=x"]
    assert main(["pretrain", "simclr-digits", *too_big]) == 2
    assert not (tmp_path / "x" / "mlruns").exists()


@pytest.mark.slow
def test_the_mlflow_store_holds_the_metrics_and_the_provenance(tmp_path):
    pytest.importorskip("mlflow")  # the [mlflow] extra: not in [dev] (see pyproject.toml)
    from mlflow.tracking import MlflowClient

    command = ["pretrain", "simclr-digits", *QUICK, "trainer.logger=mlflow", f"out_dir={tmp_path}", "name=x"]
    assert main(command) == 0
    run = tmp_path / "x"
    record = json.loads((run / "run.json").read_text())
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("ssl-coded")
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.data.params["recipe_name"] == "simclr-digits" and logged.data.params["seed"] == "0"
    assert logged.data.params["overrides"] == " ".join(command[2:])
    assert logged.data.tags["ssl_coded.run_id"] == record["run_id"]
    assert logged.data.tags["version.torch"] == record["sessions"][0]["versions"]["torch"]
    assert "train_loss" in logged.data.metrics
    assert (run / "metrics.csv").is_file()  # the CSV stays
