"""IDX files (the MNIST format) and Fashion-MNIST, found by data.root, $SSL_CODED_FASHION_MNIST or
Debian's folder."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ssl_coded.data.errors import DatasetError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist puts the files


FASHION_MNIST_ENV = "SSL_CODED_FASHION_MNIST"  # a folder of the four IDX files, used where data.root is empty


FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


# The fix for any damaged IDX file; read_idx is only used for Fashion-MNIST, so name its package.
_IDX_FIX = "download it again, or apt-get install --reinstall dataset-fashion-mnist"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not.

    Args:
        path: the file; a `.gz` suffix means gzip-compressed.

    Returns:
        The uint8 array, shaped as the header says.

    Raises:
        DatasetError: the file is not gzip (for `.gz`), is cut short, or its header does not match its size.
    """
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        # A cut-short download ends the deflate stream early (EOFError); a file that is not gzip, or one
        # with a bad CRC, is BadGzipFile; damage inside the deflate stream is zlib.error.
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise DatasetError(f"{path} is truncated or not gzip ({error}); {_IDX_FIX}") from error
    else:
        data = path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] == 0:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file; {_IDX_FIX}")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DatasetError(
            f"{path} is truncated: its header needs {offset} bytes, the file has {len(data)}; {_IDX_FIX}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected, found = int(np.prod(shape)), len(data) - offset
    if found < expected:
        raise DatasetError(f"{path} is truncated: expected {expected} values, found {found}; {_IDX_FIX}")
    if found > expected:
        raise DatasetError(f"{path} has {found} values but its header says {expected}; {_IDX_FIX}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


# Every "no Fashion-MNIST here" error names both ways to point at the files, and the package.
_FASHION_FIX = (
    f"point data.root=FOLDER or {FASHION_MNIST_ENV}=FOLDER at a folder with the four IDX files, "
    "or apt-get install dataset-fashion-mnist"
)


def fashion_mnist_dir(root: str | Path = "") -> tuple[Path, str]:
    """The Fashion-MNIST folder and where it came from: `root` (data.root), else the folder that
    $SSL_CODED_FASHION_MNIST names, else Debian's `/usr/share/datasets/fashion-mnist`.

    Example:
        >>> fashion_mnist_dir("")  # with SSL_CODED_FASHION_MNIST=/data/fmnist
        (PosixPath('/data/fmnist'), 'SSL_CODED_FASHION_MNIST')
    """
    if root:
        return Path(root), "data.root"
    if os.environ.get(FASHION_MNIST_ENV):
        return Path(os.environ[FASHION_MNIST_ENV]), FASHION_MNIST_ENV
    return Path(FASHION_MNIST_DIR), "the default"


def _find(root: Path, source: str, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"missing {stem}[.gz] in Fashion-MNIST folder {root} ({source}); {_FASHION_FIX}")


def load_fashion_mnist(root: str | Path) -> dict[str, tuple[Tensor, Tensor]]:
    """Fashion-MNIST's train and test splits from the folder `fashion_mnist_dir(root)` names.

    Raises:
        DatasetError: the folder or one of its four IDX files (gzipped or not) is missing or damaged.
    """
    root, source = fashion_mnist_dir(root)
    if not root.is_dir():
        raise DatasetError(f"Fashion-MNIST folder {root} ({source}) does not exist; {_FASHION_FIX}")
    out = {}
    for split, (images_stem, labels_stem) in FASHION_MNIST_FILES.items():
        images_path, labels_path = _find(root, source, images_stem), _find(root, source, labels_stem)
        images, labels = read_idx(images_path), read_idx(labels_path)
        # Each file can be well-formed on its own and still be the wrong file (or a mismatched pair).
        if images.ndim != 3:
            raise DatasetError(f"{images_path} holds shape {images.shape}, not (n, height, width) images; {_IDX_FIX}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DatasetError(
                f"{labels_path} holds shape {labels.shape}, not {len(images)} labels for {images_path}; {_IDX_FIX}"
            )
        out[split] = (torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
    return out
