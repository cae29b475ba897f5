import os
from pathlib import Path

import pytest

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def fashion_mnist_root() -> Path:
    """The Debian Fashion-MNIST folder: skipped on a laptop without it, a failure under CI."""
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must provide Fashion-MNIST in {FASHION_MNIST} (.ci/run installs dataset-fashion-mnist)")
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return FASHION_MNIST
