import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_coded.training.config import DataConfig
from ssl_coded.training.datasets import DatasetError, load_splits, read_idx


def write_idx(path, array, compress):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


def make_fashion_folder(root, n_train=50, n_test=20, compress=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, compress)
    return root


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_idx_files_with_explicit_splits(tmp_path, compress):
    root = make_fashion_folder(tmp_path, compress=compress)
    splits = load_splits(DataConfig(name="fashion-mnist", root=str(root), val_fraction=0.2, split_seed=3))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 10, 20)
    assert splits.train.images.shape[1:] == (1, 28, 28) and splits.train.images.dtype == torch.uint8
    assert splits.num_classes == 10 and splits.channels == 1 and splits.image_size == 28
    raw = torch.from_numpy(read_idx(root / f"train-images-idx3-ubyte{'.gz' if compress else ''}").copy())
    together = torch.cat([splits.train.images, splits.val.images]).squeeze(1)
    assert sorted(together.flatten(1).sum(1).tolist()) == sorted(raw.flatten(1).sum(1).tolist())  # disjoint cover
    again = load_splits(DataConfig(name="fashion-mnist", root=str(root), val_fraction=0.2, split_seed=3))
    assert torch.equal(again.val.images, splits.val.images)  # the fixed seed fixes the split


def test_missing_and_truncated_files_name_the_fix(tmp_path):
    with pytest.raises(DatasetError, match="does not exist; apt-get install dataset-fashion-mnist"):
        load_splits(DataConfig(name="fashion-mnist", root=str(tmp_path / "nowhere")))
    make_fashion_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="missing t10k-labels-idx1-ubyte"):
        load_splits(DataConfig(name="fashion-mnist", root=str(tmp_path)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 20, 1, 2]))
    with pytest.raises(DatasetError, match="truncated"):
        load_splits(DataConfig(name="fashion-mnist", root=str(tmp_path)))


def test_digits_is_embedded():
    splits = load_splits(DataConfig(name="digits", val_fraction=0.1))
    assert len(splits.train) + len(splits.val) + len(splits.test) == 1797
    assert splits.train.images.shape[1:] == (1, 8, 8) and int(splits.train.images.max()) == 255


def make_image_folder(root, classes=("cat", "dog"), per_class=3, size=10):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def test_image_folder_is_resized_and_labelled(tmp_path):
    root = make_image_folder(tmp_path)
    splits = load_splits(DataConfig(name="imagefolder", root=str(root), image_size=16, val_fraction=0.34))
    assert splits.test.images.shape == (6, 3, 16, 16) and splits.num_classes == 2
    assert sorted(splits.test.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert len(splits.train) + len(splits.val) == 6 and len(splits.val) == 2
    sampled = load_splits(DataConfig(name="imagefolder", root=str(root), image_size=8, val_fraction=0.34, max_test=4))
    assert len(sampled.test) == 4 and set(sampled.test.labels.tolist()) == {0, 1}  # not a class-sorted prefix
    with pytest.raises(DatasetError, match="must hold train/ and test/"):
        load_splits(DataConfig(name="imagefolder", root=str(tmp_path / "train")))


def test_torchvision_dataset_missing_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"cifar10 not found in .*data.download=true"):
        load_splits(DataConfig(name="cifar10", root=str(tmp_path)))
    with pytest.raises(DatasetError, match="unknown dataset 'mnist'"):
        load_splits(DataConfig(name="mnist"))


def test_loader_fetches_whole_batches(tmp_path):
    splits = load_splits(DataConfig(name="digits"))
    images, labels = next(iter(splits.train.loader(batch_size=64, shuffle=True)))
    assert images.shape == (64, 1, 8, 8) and labels.shape == (64,)


def test_real_fashion_mnist(fashion_mnist_root):
    splits = load_splits(DataConfig(name="fashion-mnist", val_fraction=0.1))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54000, 6000, 10000)
    assert splits.num_classes == 10
