"""The feature cache is reused only when intact; a full disk, non-finite features or an empty split are
one clear error and leave nothing behind."""

import errno
import json
import math
import os
import re
import warnings

import numpy as np
import pytest
import torch
from ssl_coded.eval.features import FeatureSource, cached_features

from ssl_coded.io import OutputError
from ssl_coded.notices import RunWarning

IMAGES = torch.arange(10 * 4, dtype=torch.float32).view(10, 4)
LABELS = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
EXPECTED = IMAGES.numpy() * 2  # what the encoder below computes, written out by hand


class CountingEncoder:
    """Doubles its input and counts its calls: a reused cache calls it never."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return images * 2


def extract(tmp_path, encoder, dataset=None):
    dataset = torch.utils.data.TensorDataset(IMAGES, LABELS) if dataset is None else dataset
    return cached_features(FeatureSource(encoder, key="weights"), dataset, "test", tmp_path / "cache", batch_size=4)


def entry(tmp_path, suffix):
    (path,) = (tmp_path / "cache").glob(f"test-*{suffix}")
    return path


def test_an_intact_cache_is_reused_without_a_warning(tmp_path):
    extract(tmp_path, CountingEncoder())
    encoder = CountingEncoder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features, labels = extract(tmp_path, encoder)
    assert encoder.calls == 0 and np.array_equal(features, EXPECTED) and labels.tolist() == LABELS.tolist()


def test_a_cache_corrupted_in_place_is_extracted_again(tmp_path):
    extract(tmp_path, CountingEncoder())
    path = entry(tmp_path, ".features.npy")
    data = bytearray(path.read_bytes())
    data[-4:] = np.float32(-1.0).tobytes()  # the last feature, same size: only a checksum can tell
    path.write_bytes(bytes(data))
    encoder = CountingEncoder()
    with pytest.warns(RunWarning, match=r"features\.npy changed since it was written.*extracting the features again"):
        features, labels = extract(tmp_path, encoder)
    assert encoder.calls > 0 and np.array_equal(features, EXPECTED) and labels.tolist() == LABELS.tolist()
    assert np.array_equal(extract(tmp_path, CountingEncoder())[0], EXPECTED)  # and the entry is whole again


def test_an_empty_labels_cache_is_extracted_again(tmp_path):
    extract(tmp_path, CountingEncoder())
    entry(tmp_path, ".labels.npy").write_bytes(b"")
    with pytest.warns(RunWarning, match=r"labels\.npy changed since it was written"):
        _, labels = extract(tmp_path, CountingEncoder())
    assert labels.tolist() == LABELS.tolist()


def test_a_cache_without_its_checksum_is_extracted_again(tmp_path):
    extract(tmp_path, CountingEncoder())
    entry(tmp_path, ".sha256").unlink()  # as an interrupted extraction, or a cache of an older version, leaves it
    np.save(entry(tmp_path, ".features.npy"), np.zeros((10, 4), np.float32))
    with pytest.warns(RunWarning, match=r"\.sha256 is missing; extracting the features again"):
        features, _ = extract(tmp_path, CountingEncoder())
    assert np.array_equal(features, EXPECTED)


def test_the_checksums_are_those_of_the_files(tmp_path):
    import hashlib

    extract(tmp_path, CountingEncoder())
    stored = json.loads(entry(tmp_path, ".sha256").read_text())
    files = [entry(tmp_path, ".features.npy"), entry(tmp_path, ".labels.npy")]
    assert stored == {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def test_a_full_disk_during_extraction_is_one_clear_error(tmp_path, monkeypatch):
    # a sparse memory map on a full disk ends the process with SIGBUS: its blocks must be reserved first
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    with pytest.raises(OutputError, match=r"cannot write .*\.features\.npy: No space left on device; free some"):
        extract(tmp_path, CountingEncoder())
    assert list((tmp_path / "cache").iterdir()) == []  # no temp file, no labels, no checksum


def test_the_memory_map_is_reserved_before_it_is_written(tmp_path, monkeypatch):
    reserved = []

    def record(fd, offset, length):
        reserved.append((offset, length, os.fstat(fd).st_size))

    monkeypatch.setattr(os, "posix_fallocate", record, raising=False)
    extract(tmp_path, CountingEncoder())
    (offset, length, size), size_now = reserved[0], entry(tmp_path, ".features.npy").stat().st_size
    assert len(reserved) == 1 and offset == 0 and length == size == size_now  # the whole file, header included


@pytest.mark.parametrize("key", ["weights", ""])
def test_non_finite_features_are_refused_and_never_cached(tmp_path, key):
    images = IMAGES.clone()
    images[2, 1], images[5, 0], images[7, 3] = math.nan, math.inf, -math.inf
    dataset = torch.utils.data.TensorDataset(images, LABELS)
    message = "the encoder's features for the test split hold 3 non-finite values (NaN/inf): its weights are likely"
    with pytest.raises(ValueError, match=re.escape(message)):
        cached_features(FeatureSource(lambda x: x * 2, key=key), dataset, "test", tmp_path / "cache", batch_size=4)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_an_empty_split_names_the_keys_that_size_it(tmp_path):
    empty = torch.utils.data.TensorDataset(IMAGES[:0], LABELS[:0])
    with pytest.raises(ValueError, match=r"the test split is empty") as info:
        extract(tmp_path, CountingEncoder(), empty)
    assert all(
        key in str(info.value) for key in ("data.max_train", "data.max_test", "data.max_val", "data.val_fraction")
    )
