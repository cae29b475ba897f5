"""A fingerprint of a data set's content, for the records of the runs trained on it: the same files give the
same fingerprint wherever they lie (relative paths, sizes and hashes; never times or absolute paths).

- digits: the SHA-256 of the embedded images and labels;
- Fashion-MNIST: the SHA-256 of each IDX file;
- an image folder or another data set on disk: the SHA-256 of the sorted list of relative paths and sizes.

Example:
    >>> fingerprint(DataConfig(name="digits"))["sha256"]
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ssl_coded.data.config import DataConfig
from ssl_coded.io import file_sha256


def fingerprint(config: DataConfig) -> dict[str, Any]:
    """{"kind", "sha256", and "files" / "bytes" where files were read} of the data `config` names."""
    if config.name == "digits":
        from ssl_coded.data.builtin import load_digits_uint8

        digest = hashlib.sha256()
        for images, labels in load_digits_uint8().values():
            digest.update(images.numpy().tobytes())
            digest.update(labels.numpy().tobytes())
        return {"kind": "embedded array", "sha256": digest.hexdigest()}
    if config.name == "fashion-mnist":
        from ssl_coded.data.idx import fashion_mnist_dir

        folder, _ = fashion_mnist_dir(config.root)
        files = sorted(p for p in folder.iterdir() if p.is_file() and "idx" in p.name)
        return {
            "kind": "IDX files",
            "files": {p.name: file_sha256(p) for p in files},
            "sha256": hashlib.sha256("".join(file_sha256(p) for p in files).encode()).hexdigest(),
        }
    return file_list(Path(config.root)) if config.root else {"kind": "unknown", "sha256": None}


def file_list(root: Path) -> dict[str, Any]:
    """The SHA-256 of `relative/path size` lines, sorted, of every file under root."""
    lines, total = [], 0
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            size = path.stat().st_size
            lines.append(f"{path.relative_to(root).as_posix()} {size}")
            total += size
    digest = hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
    return {"kind": "file list", "files": len(lines), "bytes": total, "sha256": digest}
