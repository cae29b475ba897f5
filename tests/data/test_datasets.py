import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_coded.data import DatasetError, TensorImageDataset, load_splits, read_idx
from ssl_coded.training.config import DataConfig


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
    fix = r"point data\.root=FOLDER or SSL_CODED_FASHION_MNIST=FOLDER at .*apt-get install dataset-fashion-mnist"
    with pytest.raises(DatasetError, match=rf"{tmp_path / 'nowhere'} \(data\.root\) does not exist; {fix}"):
        load_splits(DataConfig(name="fashion-mnist", root=str(tmp_path / "nowhere")))
    make_fashion_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=rf"missing t10k-labels-idx1-ubyte\[\.gz\] in Fashion-MNIST .*; {fix}"):
        load_splits(DataConfig(name="fashion-mnist", root=str(tmp_path)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 20, 1, 2]))
    with pytest.raises(DatasetError, match="truncated"):
        load_splits(DataConfig(name="fashion-mnist", root=str(tmp_path)))


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        pytest.param("cut", r"train-images-idx3-ubyte\.gz is truncated or not gzip .*download it again", id="cut"),
        pytest.param(
            "not-gzip",
            r"train-images-idx3-ubyte\.gz is truncated or not gzip .*reinstall dataset-fashion-mnist",
            id="not-gzip",
        ),
        pytest.param(
            "short-header",
            r"train-images-idx3-ubyte\.gz is truncated: its header needs 16 bytes.*download it again",
            id="short-header",
        ),
        pytest.param(
            "extra",
            r"train-images-idx3-ubyte\.gz has 39201 values but its header says 39200; download it again",
            id="extra",
        ),
    ],
)
def test_damaged_gz_idx_file_is_named_with_the_fix(tmp_path, damage, match):
    make_fashion_folder(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    if damage == "cut":  # an interrupted download: the deflate stream ends early
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "not-gzip":  # e.g. an HTML error page saved under the file's name
        path.write_bytes(b"<html>404 Not Found</html>")
    elif damage == "short-header":  # valid gzip, but the IDX header stops after the magic number
        path.write_bytes(gzip.compress(bytes([0, 0, 0x08, 3, 0, 0])))
    else:  # valid gzip and header, one byte more than the header's 50 x 28 x 28
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()) + b"\0"))
    with pytest.raises(DatasetError, match=match):
        load_splits(DataConfig(name="fashion-mnist", root=str(tmp_path)))


def test_truncated_plain_idx_file_and_mismatched_pair_name_the_fix(tmp_path):
    make_fashion_folder(tmp_path, compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte is truncated: expected 15680 values.*download it"):
        load_splits(DataConfig(name="fashion-mnist", root=str(tmp_path)))
    write_idx(path, np.zeros((20, 28, 28)), compress=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(19), compress=False)  # one label short
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte holds shape \(19,\), not 20 labels for"):
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


def test_image_folder_keeps_the_aspect_ratio_by_a_centre_crop(tmp_path):
    root = make_image_folder(tmp_path, per_class=1, size=10)
    # a 24 x 12 image, black but for columns 6-17: resized to 16 x 8, the centre 8 x 8 is that band alone
    # (squashed to 8 x 8 instead, the band would cover columns 2-5 only)
    bands = np.zeros((12, 24, 3), dtype=np.uint8)
    bands[:, 6:18] = 200
    Image.fromarray(bands).save(root / "test" / "cat" / "0.png")
    splits = load_splits(DataConfig(name="imagefolder", root=str(root), image_size=8, val_fraction=0.5))
    image = splits.test[0][0]
    assert image.shape == (3, 8, 8) and int(image[:, :, 1:7].min()) == 200  # the band, far from the cuts
    default = load_splits(DataConfig(name="imagefolder", root=str(root), val_fraction=0.5))
    assert default.image_size == 64 and default.test.take([0])[0].shape == (1, 3, 64, 64)  # 0 = 64


def test_take_fetches_images_by_index():
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 2, 3, 3).contiguous()
    dataset = TensorImageDataset(images, torch.arange(5) * 10)
    picked, labels = dataset.take(torch.tensor([3, 0]))
    assert picked[:, 0, 0, 0].tolist() == [3, 0] and labels.tolist() == [30, 0]
    assert (dataset.channels, dataset.image_size) == (2, 3)


def test_dataset_error_from_a_worker_keeps_its_one_line():
    # what torch's DataLoader builds from an error in a worker process (torch._utils.ExceptionWrapper)
    wrapped = (
        "Caught DatasetError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n    raise DatasetError(...)\n'
        "ssl_coded.data.DatasetError: cannot read image a/b.png: image file is truncated; replace it\n"
    )
    assert str(DatasetError(wrapped)) == "cannot read image a/b.png: image file is truncated; replace it"
    assert str(DatasetError("plain message")) == "plain message"


def corrupt(path, seed=1):
    """Overwrite an image with random bytes, as a half-copied or mis-named file would be."""
    path.write_bytes(np.random.default_rng(seed).bytes(300))
    return path


def test_corrupt_image_is_named_with_the_fix(tmp_path):
    root = make_image_folder(tmp_path)
    bad = corrupt(root / "train" / "dog" / "1.png")
    with pytest.raises(DatasetError, match=rf"cannot read image {bad}: .*data\.skip_unreadable=true"):
        load_splits(DataConfig(name="imagefolder", root=str(root), image_size=8))
    cut = root / "test" / "cat" / "0.png"
    bad.unlink()
    cut.write_bytes(cut.read_bytes()[:100])  # a real PNG cut short: PIL opens it, then fails to decode
    with pytest.raises(DatasetError, match=rf"cannot read image {cut}: image file is truncated; replace or delete"):
        load_splits(DataConfig(name="imagefolder", root=str(root), image_size=8))


@pytest.mark.parametrize("index", [torch.tensor([3, 0]), [3, 0], torch.tensor([True, False, False, True, False])])
def test_a_selection_keeps_each_row_with_its_file(index):
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 1, 2, 2).contiguous()
    dataset = TensorImageDataset(images, torch.arange(5), np.array([f"/data/{i}.png".encode() for i in range(5)]))
    chosen = dataset.select(index)
    assert [chosen.path(i) for i in range(len(chosen))] == [f"/data/{int(v)}.png" for v in chosen.images[:, 0, 0, 0]]
    assert TensorImageDataset(images, torch.arange(5)).select(index).path(0) == ""  # not from files


def test_skip_unreadable_counts_and_skips(tmp_path, capsys):
    root = make_image_folder(tmp_path)
    first = corrupt(root / "train" / "cat" / "2.png")
    corrupt(root / "train" / "dog" / "0.png", seed=2)
    splits = load_splits(
        DataConfig(name="imagefolder", root=str(root), image_size=8, val_fraction=0.25, skip_unreadable=True)
    )
    assert len(splits.train) + len(splits.val) == 4 and len(splits.test) == 6  # 6 - 2 skipped, test untouched
    assert sorted(torch.cat([splits.train.labels, splits.val.labels]).tolist()) == [0, 0, 1, 1]
    kept = [splits.train.path(i) for i in range(len(splits.train))] + [
        splits.val.path(i) for i in range(len(splits.val))
    ]
    assert str(first) not in kept and len(set(kept)) == 4  # the skipped files are not named for other rows
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"ssl-coded: warning: skipped 2 unreadable images in {root / 'train'} (e.g. {first})"]


def test_split_with_only_unreadable_images_is_still_an_error(tmp_path):
    root = make_image_folder(tmp_path, per_class=1)
    for path in (root / "test").rglob("*.png"):
        corrupt(path)
    with pytest.raises(DatasetError, match=rf"all 2 images in {root / 'test'} are unreadable \(e\.g\. "):
        load_splits(DataConfig(name="imagefolder", root=str(root), skip_unreadable=True))


@pytest.mark.parametrize("missing", ["train", "test"])
def test_missing_split_folder_is_named(tmp_path, missing):
    root = make_image_folder(tmp_path)
    for path in sorted((root / missing).rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / missing).rmdir()
    with pytest.raises(DatasetError, match=rf"{root / missing} is not a folder: .* must hold train/ and test/"):
        load_splits(DataConfig(name="imagefolder", root=str(root)))


def test_split_folder_without_images_is_a_clear_error(tmp_path):
    root = make_image_folder(tmp_path)
    for path in (root / "test").rglob("*.png"):
        path.unlink()
    with pytest.raises(DatasetError, match=rf"{root / 'test'} has no images in class subfolders"):
        load_splits(DataConfig(name="imagefolder", root=str(root)))


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
