import os
from pathlib import Path

import pytest


def fashion_mnist_folder() -> Path:
    """Where the loader looks for Fashion-MNIST when data.root is empty: $SSL_CODED_FASHION_MNIST, else
    Debian's folder; pointing the variable at an empty folder hides the data from the tests. It mirrors
    `fashion_mnist_dir` (ssl_coded/data/idx.py) so that this file imports no torch; a test in
    tests/data/test_data_faults.py checks that the two agree."""
    return Path(os.environ.get("SSL_CODED_FASHION_MNIST") or "/usr/share/datasets/fashion-mnist")


FASHION_MNIST = fashion_mnist_folder()  # as this session started; the fixture reads the variable when used


@pytest.fixture(scope="session", autouse=True)
def calibration_cache(tmp_path_factory):
    """The bf16 calibration (ssl_coded.search.calibration) is cached in a folder of this test session, never in
    the user's ~/.cache; subprocesses inherit it."""
    previous = os.environ.get("SSL_CODED_CACHE_DIR")
    os.environ["SSL_CODED_CACHE_DIR"] = str(tmp_path_factory.mktemp("calibration"))
    yield
    if previous is None:
        os.environ.pop("SSL_CODED_CACHE_DIR", None)
    else:
        os.environ["SSL_CODED_CACHE_DIR"] = previous


FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
FASHION_MNIST_FILES += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture
def fashion_mnist_root() -> Path:
    """The Fashion-MNIST folder the loader would use (`fashion_mnist_folder`), its four IDX files gzipped or
    not: skipped on a laptop without them, a failure under CI."""
    folder = fashion_mnist_folder()
    if not all((folder / stem).is_file() or (folder / f"{stem}.gz").is_file() for stem in FASHION_MNIST_FILES):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must provide Fashion-MNIST in {folder} (.ci/run installs dataset-fashion-mnist)")
        pytest.skip(
            f"Fashion-MNIST not in {folder} (apt-get install dataset-fashion-mnist, or SSL_CODED_FASHION_MNIST=FOLDER)"
        )
    return folder


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
