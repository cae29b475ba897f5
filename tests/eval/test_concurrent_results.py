"""Evaluations of one output directory at once keep every row; a results.json that is not ours is refused
before anything is written; Ctrl-C in eval ends in one line (ssl_coded.rundir around evaluate_sources)."""

import json
import multiprocessing
import subprocess
import sys

import pytest
import torch

from ssl_coded.rundir import lock_path

SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: no fork of torch's threads


def _evaluate_rows(out, worker, barrier, count):
    from ssl_coded.eval.features import FeatureSource
    from ssl_coded.eval.report import evaluate_sources
    from ssl_coded.eval.settings import EvalSettings

    generator = torch.Generator().manual_seed(0)
    images, labels = torch.rand(40, 1, 4, 4, generator=generator), torch.arange(40) % 4
    data = torch.utils.data.TensorDataset(images, labels)
    barrier.wait(60)
    for i in range(count):
        source = FeatureSource(lambda x: x.flatten(1), key=f"pixels-{worker}-{i}")
        settings = EvalSettings(("knn",), plots=False, device="cpu")
        evaluate_sources({f"w{worker}-{i}": source}, {"train": data, "test": data}, 4, out, settings)


@pytest.mark.slow  # spawns interpreters
def test_concurrent_evaluations_keep_every_row(tmp_path):
    workers, each = 4, 5
    barrier = SPAWN.Barrier(workers)
    processes = [SPAWN.Process(target=_evaluate_rows, args=(tmp_path, w, barrier, each)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert set(rows) == {f"w{w}-{i}" for w in range(workers) for i in range(each)}
    assert not lock_path(tmp_path).exists()  # the last reader removed the run's lock file


def test_a_results_file_that_is_not_ours_is_refused_before_anything_is_written(tmp_path):
    from ssl_coded.eval.features import FeatureSource
    from ssl_coded.eval.report import evaluate_sources

    (tmp_path / "results.json").write_text("[1, 2]")
    data = torch.utils.data.TensorDataset(torch.rand(8, 1, 2, 2), torch.arange(8) % 2)
    with pytest.raises(ValueError, match=r"not an ssl-coded results file.*move it away or choose --out"):
        evaluate_sources(
            {"e": FeatureSource(lambda x: x.flatten(1), key="k")}, {"train": data, "test": data}, 2, tmp_path
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert (tmp_path / "results.json").read_text() == "[1, 2]"


@pytest.mark.slow  # spawns interpreters
def test_ctrl_c_in_eval_is_one_line_and_exit_status_130(tmp_path):
    # the interrupt lands while the command runs (an encoder that interrupts itself): no traceback
    code = (
        "import os, signal, sys, torch\n"
        "import ssl_coded.eval.report as report\n"
        "def stop(*a, **k):\n    os.kill(os.getpid(), signal.SIGINT)\n    for _ in range(10**8): pass\n"
        "report.cached_features = stop\n"
        "from ssl_coded.cli import main\n"
        f"sys.exit(main(['eval', 'knn', 'torchvision:resnet18', '--out', r'{tmp_path / 'out'}', '--device', 'cpu']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 130, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == ["ssl-coded: interrupted (SIGINT)"]
