"""Data-loading faults (issue 24): symlink loops, high-bit-depth images, decompression bombs, and where
Fashion-MNIST is looked for. Expected pixels are worked out by hand, not by the code under test."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_coded.cli import main
from ssl_coded.data import (
    DatasetError,
    StreamingImageFolder,
    decode_files,
    fashion_mnist_dir,
    list_image_folder,
    load_splits,
)
from ssl_coded.training.config import DataConfig
from tests.conftest import fashion_mnist_folder
from tests.data.test_datasets import make_fashion_folder, make_image_folder


def real_images(folder):
    """{path: class name} of the image files really under folder/<class>/, no link followed."""
    return {str(path): path.parent.name for path in sorted(folder.glob("*/*.png")) if not path.is_symlink()}


@pytest.mark.parametrize(
    ("link", "target"),
    [
        pytest.param("cat/loop", "..", id="loop-to-the-split"),  # cat, dog, and loop again, until the path is too long
        pytest.param("dog/up", "../..", id="loop-above-the-split"),  # train/ and test/, and up again
        pytest.param("dog/cats", "../cat", id="link-to-a-class"),  # cat's images again, labelled dog
    ],
)
def test_symlink_loops_inside_class_folders_are_listed_once(tmp_path, capsys, link, target):
    root = make_image_folder(tmp_path / "data")  # train/{cat,dog}/{0,1,2}.png
    train = root / "train"
    (train / link).symlink_to(target)
    files = list_image_folder(str(root))["train"]
    expected = real_images(train)
    assert len(expected) == 6 and sorted(files.paths) == sorted(expected)
    assert [("cat", "dog")[label] for label in files.labels] == [expected[path] for path in files.paths]
    warning = capsys.readouterr().err.strip().splitlines()
    assert warning == [
        f"ssl-coded: warning: did not enter 1 symlinked folder(s) in {train} that lead to a folder already listed "
        f"(e.g. {train / link} -> {(train / link).resolve()}): a symlink loop, or a second link to it"
    ]
    splits = load_splits(DataConfig(name="imagefolder", root=str(root), image_size=8, val_fraction=0.5))
    assert sorted(torch.cat([splits.train.labels, splits.val.labels]).tolist()) == [0, 0, 0, 1, 1, 1]
    assert sorted(splits.test.labels.tolist()) == [0, 0, 0, 1, 1, 1]  # the test split, untouched


def test_links_to_folders_and_files_listed_nowhere_else_are_followed(tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", per_class=1)
    outside = make_image_folder(tmp_path / "outside", classes=("more",), per_class=2) / "train" / "more"
    (root / "train" / "cat" / "more").symlink_to(outside)
    (root / "train" / "dog" / "linked.png").symlink_to(outside / "0.png")
    files = list_image_folder(str(root))["train"]
    cat, dog = root / "train" / "cat", root / "train" / "dog"
    expected = [cat / "0.png", cat / "more" / "0.png", cat / "more" / "1.png", dog / "0.png", dog / "linked.png"]
    assert files.paths == [str(path) for path in expected]
    assert files.labels == [0, 0, 0, 1, 1] and capsys.readouterr().err == ""


def test_without_loops_the_listing_is_torchvision_image_folders(tmp_path):
    from torchvision.datasets import ImageFolder

    root = make_image_folder(tmp_path / "data")  # a validation split carved by seed depends on this order
    cat = root / "train" / "cat"
    for name in ("b/deep", "a", ".hidden"):
        (cat / name).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(cat / name / "x.PNG")
    (cat / "notes.txt").write_text("not an image")
    (root / "train" / "dog" / "more").symlink_to(make_image_folder(tmp_path / "outside", classes=("o",)) / "test" / "o")
    reference = ImageFolder(root / "train")
    files = list_image_folder(str(root))["train"]
    assert list(zip(files.paths, files.labels, strict=True)) == reference.samples and len(files) == 12


@pytest.mark.parametrize("target", [".", "..", "cat"])
def test_a_class_folder_that_links_back_is_refused_with_the_link_named(tmp_path, target):
    root = make_image_folder(tmp_path)
    link = root / "train" / "zebra"
    link.symlink_to(target)
    with pytest.raises(DatasetError, match=rf"class folder {link} leads to .*symlink loop\); make it a folder of"):
        list_image_folder(str(root))


def save_gray(path, pixels):
    Image.fromarray(pixels).save(path)
    return path


def decoded_both_ways(root, size):
    """The train split decoded in memory and streamed (the two paths a run can take), as numpy arrays."""
    files = list_image_folder(str(root))["train"]
    in_memory, _ = decode_files(files, size)
    streamed, _ = StreamingImageFolder(files.paths, torch.tensor(files.labels), size).take(range(len(files)))
    return in_memory.numpy(), streamed.numpy()


def one_image_folder(tmp_path, name):
    """An ImageFolder whose train split holds one class folder for the file `name`; the test split one PNG."""
    make_image_folder(tmp_path, classes=("a",), per_class=1)
    (tmp_path / "train" / "a" / "0.png").unlink()
    return tmp_path / "train" / "a" / name


# 4 x 4 images and the 8-bit values they stand for, worked out by hand (no value is near a rounding tie).
# 16-bit v -> round(v * 255 / 65535) = round(v / 257): 257 -> 1, 386 -> 1.502, 1000 -> 3.89, 32896 -> 128,
# 40000 -> 155.64, 65534 -> 254.996 (PIL alone clips every value over 255 to 255)
SIXTEEN_BIT = np.array([[0, 257, 386, 1000], [32896, 40000, 65534, 65535]] * 2, dtype=np.uint16)
SIXTEEN_BIT_AS_8 = np.array([[0, 1, 2, 4], [128, 156, 255, 255]] * 2, dtype=np.uint8)
# float v in [0, 1] -> round(v * 255): 0.25 -> 63.75, 0.75 -> 191.25, 0.002 -> 0.51, 0.6 -> 153, 0.4 -> 102,
# 0.123 -> 31.365 (PIL alone truncates every value to 0 or 1)
FLOATS = np.array([[0.0, 0.25, 0.75, 1.0], [0.002, 0.6, 0.4, 0.123]] * 2, dtype=np.float32)
FLOATS_AS_8 = np.array([[0, 64, 191, 255], [1, 153, 102, 31]] * 2, dtype=np.uint8)


def write_pgm16(path, pixels):
    """A binary 16-bit PGM (maxval 65535), which PIL opens as 32-bit mode "I"."""
    height, width = pixels.shape
    path.write_bytes(f"P5\n{width} {height}\n65535\n".encode() + pixels.astype(">u2").tobytes())
    return path


@pytest.mark.parametrize(
    ("name", "write", "mode", "expected"),
    [
        pytest.param("0.png", lambda p: save_gray(p, SIXTEEN_BIT), "I;16", SIXTEEN_BIT_AS_8, id="16-bit-png"),
        pytest.param("0.tif", lambda p: save_gray(p, SIXTEEN_BIT), "I;16", SIXTEEN_BIT_AS_8, id="16-bit-tiff"),
        pytest.param("0.pgm", lambda p: write_pgm16(p, SIXTEEN_BIT), "I", SIXTEEN_BIT_AS_8, id="16-bit-pgm-as-I"),
        pytest.param("0.tif", lambda p: save_gray(p, FLOATS), "F", FLOATS_AS_8, id="float-tiff"),
    ],
)
def test_high_bit_depth_images_are_scaled_to_8_bits_in_memory_and_streamed(tmp_path, name, write, mode, expected):
    path = write(one_image_folder(tmp_path, name))
    with Image.open(path) as image:
        assert image.mode == mode  # the case this covers, as PIL opens it
    for decoded in decoded_both_ways(tmp_path, size=4):  # at its own size: no resampling
        assert decoded.shape == (1, 3, 4, 4)
        for channel in decoded[0]:  # gray: the same in R, G and B
            np.testing.assert_array_equal(channel, expected)


@pytest.mark.parametrize(
    ("pixels", "match"),
    [
        pytest.param(np.full((4, 4), 3.0, dtype=np.float32), r"mode F pixels span \[3, 3\], but floats are", id="F"),
        pytest.param(np.full((4, 4), np.nan, dtype=np.float32), r"mode F pixels span \[nan, nan\]", id="nan"),
        pytest.param(np.full((4, 4), -1, dtype=np.int32), r"mode I pixels span \[-1, -1\], but integers", id="I<0"),
        pytest.param(np.full((4, 4), 70000, dtype=np.int32), r"mode I pixels span \[70000, 70000\]", id="I>16"),
    ],
)
def test_high_bit_depth_values_out_of_range_are_refused_in_one_line_or_skipped(tmp_path, capsys, pixels, match):
    path = save_gray(one_image_folder(tmp_path, "0.tif"), pixels)
    for name in ("1.png", "2.png"):  # readable ones
        Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "train" / "a" / name)
    files = list_image_folder(str(tmp_path))["train"]
    message = rf"^cannot read image {path}: {match}.*\(save it as 8- or 16-bit\); replace or delete it"
    with pytest.raises(DatasetError, match=message):
        decode_files(files, 4)
    with pytest.raises(DatasetError, match=message):
        StreamingImageFolder(files.paths, torch.tensor(files.labels), 4).take([0])
    skipped = f"ssl-coded: warning: skipped 1 unreadable image in {tmp_path / 'train'} (e.g. {path})"
    for stream in ("false", "true"):  # data.skip_unreadable: skipped and counted in either path
        splits = load_splits(
            DataConfig(name="imagefolder", root=str(tmp_path), stream=stream, skip_unreadable=True, val_fraction=0.5)
        )
        assert len(splits.train) + len(splits.val) == 2
        assert capsys.readouterr().err.strip().splitlines() == [skipped]


@pytest.fixture
def small_pixel_limit(monkeypatch):
    """PIL's decompression-bomb guard at 100 pixels: it warns above 100 and raises above 200."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)


@pytest.mark.parametrize("side", [12, 15], ids=["warned-144-pixels", "raised-225-pixels"])
def test_a_decompression_bomb_is_one_line_or_skipped(tmp_path, capsys, small_pixel_limit, side):
    root = make_image_folder(tmp_path)  # 10 x 10 images: at the limit, not over it
    bomb = root / "train" / "dog" / "1.png"
    Image.fromarray(np.zeros((side, side, 3), dtype=np.uint8)).save(bomb)
    message = rf"cannot read image {bomb}: Image size \({side * side} pixels\) exceeds limit .*MAX_IMAGE_PIXELS"
    for stream in ("false", "true"):
        config = DataConfig(
            name="imagefolder", root=str(root), image_size=8, stream=stream, val_fraction=0.2, num_workers=0
        )
        with pytest.raises(DatasetError, match=rf"{message}.*data\.skip_unreadable=true"):
            splits = load_splits(config)  # a streamed split meets the file when a batch holding it is read
            [batch for split in (splits.train, splits.val) for batch in split.loader(2)]
        config.skip_unreadable = True
        splits = load_splits(config)
        assert len(splits.train) + len(splits.val) == 5 and len(splits.test) == 6
        skipped = f"ssl-coded: warning: skipped 1 unreadable image in {root / 'train'} (e.g. {bomb})"
        assert capsys.readouterr().err.strip().splitlines() == [skipped]
    overrides = ["data.name=imagefolder", f"data.root={root}", "data.image_size=8", f"out_dir={tmp_path / 'runs'}"]
    assert main(["pretrain", "simclr-digits", *overrides]) == 2  # the command line: one line, exit status 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ssl-coded: error: cannot read image {bomb}: Image size")


def test_fashion_mnist_is_found_by_data_root_then_the_environment_then_debian(tmp_path, monkeypatch):
    for name in ("env", "root"):
        (tmp_path / name).mkdir()
    make_fashion_folder(tmp_path / "env", n_train=30)
    make_fashion_folder(tmp_path / "root", n_train=40)
    monkeypatch.setenv("SSL_CODED_FASHION_MNIST", str(tmp_path / "env"))
    assert len(load_splits(DataConfig(name="fashion-mnist", val_fraction=0.1)).train) == 27  # 30 from the variable
    assert len(load_splits(DataConfig(name="fashion-mnist", root=str(tmp_path / "root"), val_fraction=0.1)).train) == 36
    assert fashion_mnist_dir("") == (tmp_path / "env", "SSL_CODED_FASHION_MNIST")
    assert fashion_mnist_folder() == tmp_path / "env"  # the tests' fixture looks where the loader looks
    monkeypatch.setenv("SSL_CODED_FASHION_MNIST", "")  # empty: unset
    assert fashion_mnist_dir("")[0] == fashion_mnist_folder() == Path("/usr/share/datasets/fashion-mnist")


def test_missing_fashion_mnist_names_the_folder_and_every_way_to_point_at_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSL_CODED_FASHION_MNIST", str(tmp_path))  # an empty folder
    assert main(["pretrain", "simclr-fashion-mnist", f"out_dir={tmp_path / 'runs'}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    for needle in (
        f"missing train-images-idx3-ubyte[.gz] in Fashion-MNIST folder {tmp_path} (SSL_CODED_FASHION_MNIST)",
        "data.root=FOLDER",
        "SSL_CODED_FASHION_MNIST=FOLDER",
        "apt-get install dataset-fashion-mnist",
    ):
        assert needle in lines[0]


@pytest.mark.parametrize("case", ["hidden", "hidden-under-ci", "plain-files"])
def test_the_fashion_mnist_fixture_looks_where_the_variable_says(tmp_path, monkeypatch, request, case):
    monkeypatch.setenv("SSL_CODED_FASHION_MNIST", str(tmp_path))  # an empty folder hides the data
    monkeypatch.setenv("CI", "true") if case == "hidden-under-ci" else monkeypatch.delenv("CI", raising=False)
    if case == "hidden":
        with pytest.raises(pytest.skip.Exception, match=rf"Fashion-MNIST not in {tmp_path}"):
            request.getfixturevalue("fashion_mnist_root")
    elif case == "hidden-under-ci":
        with pytest.raises(pytest.fail.Exception, match=rf"CI must provide Fashion-MNIST in {tmp_path}"):
            request.getfixturevalue("fashion_mnist_root")
    else:
        make_fashion_folder(tmp_path, compress=False)  # the four files, not gzipped
        assert request.getfixturevalue("fashion_mnist_root") == tmp_path
