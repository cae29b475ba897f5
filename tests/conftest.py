import os
from pathlib import Path

import pytest

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session", autouse=True)
def calibration_cache(tmp_path_factory):
    """The bf16 calibration (ssl_coded.calibration) is cached in a folder of this test session, never in
    the user's ~/.cache; subprocesses inherit it."""
    previous = os.environ.get("SSL_CODED_CACHE_DIR")
    os.environ["SSL_CODED_CACHE_DIR"] = str(tmp_path_factory.mktemp("calibration"))
    yield
    if previous is None:
        os.environ.pop("SSL_CODED_CACHE_DIR", None)
    else:
        os.environ["SSL_CODED_CACHE_DIR"] = previous


@pytest.fixture
def fashion_mnist_root() -> Path:
    """The Debian Fashion-MNIST folder: skipped on a laptop without it, a failure under CI."""
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must provide Fashion-MNIST in {FASHION_MNIST} (.ci/run installs dataset-fashion-mnist)")
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return FASHION_MNIST


QUICK_PRETRAIN = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.batch_size=32",
    "eval.bank_size=128",
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    """A `simclr-digits` run of two training steps, made once per test module."""
    from ssl_coded.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(["pretrain", "simclr-digits", *QUICK_PRETRAIN, f"out_dir={out}", "name=run"]) == 0
    return out / "run"
