"""The streamed ImageFolder (`StreamingImageFolder`) against the in-memory path, PIL, and a memory budget."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_coded.data import (
    DatasetError,
    StreamingImageFolder,
    TensorImageDataset,
    channel_stats,
    decoded_bytes,
    list_image_folder,
    load_splits,
    read_square_image,
    streams,
)
from ssl_coded.training.config import ConfigError, DataConfig
from ssl_coded.training.recipes import load_config
from ssl_coded.training.summary import raw_pixel_row, streamed_neighbours

# (width, height) of the generated files: square, landscape, portrait, odd sizes, smaller than the target
SIZES = [(20, 20), (40, 20), (17, 33), (64, 48), (9, 13), (50, 21)]


def make_mixed_folder(root, classes=("ant", "bee", "cat"), per_class=6, test_per_class=3, seed=0):
    """An ImageFolder of random-pixel PNGs of several shapes, one grayscale and one RGBA among them."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("test", test_per_class)):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                width, height = SIZES[(i + len(name)) % len(SIZES)]
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                image = Image.fromarray(pixels)
                if i == 1:
                    image = image.convert("L")
                elif i == 2:
                    image = image.convert("RGBA")
                image.save(root / split / name / f"{i}.png")
    return root


def folder_config(root, **settings):
    return DataConfig(name="imagefolder", root=str(root), image_size=16, val_fraction=0.25, **settings)


def every_batch(dataset, batch_size=5, **options):
    images, labels = zip(*dataset.loader(batch_size, **options), strict=True)
    return torch.cat(images), torch.cat(labels)


def test_streamed_and_in_memory_splits_give_the_same_batches(tmp_path):
    root = make_mixed_folder(tmp_path)
    streamed = load_splits(folder_config(root, stream="true"))
    in_memory = load_splits(folder_config(root, stream="false"))
    assert isinstance(streamed.train, StreamingImageFolder) and isinstance(in_memory.train, TensorImageDataset)
    assert (streamed.channels, streamed.image_size, streamed.num_classes) == (3, 16, 3)
    assert (in_memory.channels, in_memory.image_size, in_memory.num_classes) == (3, 16, 3)
    for split in ("train", "val", "test"):
        a, b = getattr(streamed, split), getattr(in_memory, split)
        assert len(a) == len(b) and torch.equal(a.labels, b.labels)
        images, labels = every_batch(a)
        assert images.dtype == torch.uint8 and images.shape == (len(a), 3, 16, 16)
        expected = every_batch(b)
        assert torch.equal(images, expected[0]) and torch.equal(labels, expected[1])
        assert torch.equal(labels, a.labels)  # the labels tensor is the batches' labels, in order
    torch.manual_seed(3)
    shuffled = next(iter(streamed.train.loader(4, shuffle=True, drop_last=True)))
    torch.manual_seed(3)
    expected = next(iter(in_memory.train.loader(4, shuffle=True, drop_last=True)))
    assert torch.equal(shuffled[0], expected[0]) and torch.equal(shuffled[1], expected[1])
    pick = [4, 0, 2]
    assert all(torch.equal(x, y) for x, y in zip(streamed.test.take(pick), in_memory.test.take(pick), strict=True))
    assert torch.equal(streamed.test[1][0], in_memory.test[1][0])
    for a, b in ((streamed.train.subset(5, seed=2), in_memory.train.subset(5, seed=2)),):
        assert torch.equal(every_batch(a)[0], every_batch(b)[0])
    np.testing.assert_allclose(streamed.mean, in_memory.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.std, in_memory.std, rtol=1e-12)


def test_max_train_and_max_test_sample_the_same_files(tmp_path):
    root = make_mixed_folder(tmp_path)
    settings = {"max_train": 5, "max_test": 4}
    streamed = load_splits(folder_config(root, stream="true", **settings))
    in_memory = load_splits(folder_config(root, stream="false", **settings))
    assert (len(streamed.train), len(streamed.test)) == (5, 4)
    for split in ("train", "val", "test"):
        assert torch.equal(every_batch(getattr(streamed, split))[0], every_batch(getattr(in_memory, split))[0])


def pil_square(path, size):
    """The expectation by PIL alone: resize the short side to `size` (bilinear), crop the centre (offsets down)."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.BILINEAR)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    return torch.from_numpy(np.array(image.crop((left, top, left + size, top + size)))).permute(2, 0, 1)


@pytest.mark.parametrize("size", [8, 16, 24])
def test_square_image_matches_pil_resize_and_centre_crop(tmp_path, size):
    root = make_mixed_folder(tmp_path)
    for path in sorted((root / "train").rglob("*.png")):
        got, expected = read_square_image(str(path), size), pil_square(path, size)
        assert got.shape == (3, size, size)
        # torchvision's antialiased bilinear and PIL's round differently by one level at most; a crop off by
        # one pixel of these random pixels would differ by up to 255
        assert int((got.int() - expected.int()).abs().max()) <= 1, path


def test_centre_crop_of_an_image_already_at_size_is_exact(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (10, 21, 3), dtype=np.uint8)  # 21 wide, 10 high
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    Image.fromarray(pixels.transpose(1, 0, 2).copy()).save(tmp_path / "tall.png")
    # no resize: the short side is already 10; (21 - 10) // 2 = 5 columns (or rows) cut before the crop
    wide = torch.from_numpy(pixels[:, 5:15].copy()).permute(2, 0, 1)
    assert torch.equal(read_square_image(str(tmp_path / "wide.png"), 10), wide)
    tall = torch.from_numpy(pixels.transpose(1, 0, 2)[5:15].copy()).permute(2, 0, 1)
    assert torch.equal(read_square_image(str(tmp_path / "tall.png"), 10), tall)


@pytest.mark.slow
def test_workers_give_the_same_batches_as_the_main_process(tmp_path):
    root = make_mixed_folder(tmp_path)
    splits = load_splits(folder_config(root, stream="true", num_workers=2))
    assert splits.train.num_workers == 2  # a loader that names no workers (evaluation's) uses them
    for split in ("train", "test"):
        dataset = getattr(splits, split)
        in_workers, main = every_batch(dataset, num_workers=2), every_batch(dataset, num_workers=0)
        assert torch.equal(in_workers[0], main[0]) and torch.equal(in_workers[1], main[1])


def test_auto_streams_when_the_decoded_size_exceeds_the_budget(tmp_path):
    root = make_mixed_folder(tmp_path, per_class=6, test_per_class=2)  # 24 files
    files = list_image_folder(str(root))
    assert decoded_bytes(files, 128) == 24 * 3 * 128 * 128  # 1.125 MiB
    assert decoded_bytes(files, 0) == 24 * 3 * 64 * 64  # the ImageFolder default size
    over = DataConfig(name="imagefolder", root=str(root), image_size=128, memory_budget_mb=1)
    under = DataConfig(name="imagefolder", root=str(root), image_size=128, memory_budget_mb=2)
    assert streams(over, files) and not streams(under, files)
    assert not streams(DataConfig(stream="false", memory_budget_mb=1, image_size=128), files)
    assert streams(DataConfig(stream="true", image_size=8), files)  # forced, far under the budget
    assert isinstance(load_splits(over).train, StreamingImageFolder)
    assert isinstance(load_splits(under).train, TensorImageDataset)


def test_stream_key_is_validated():
    assert load_config("simclr-digits", ["data.stream=True"]).data.stream == "true"  # YAML's boolean
    assert load_config("simclr-digits", []).data.stream == "auto"
    with pytest.raises(ConfigError, match=r"data\.stream='sometimes' must be auto, true or false"):
        load_config("simclr-digits", ["data.stream=sometimes"])
    with pytest.raises(ConfigError, match=r"data\.memory_budget_mb=0 must be >= 1"):
        load_config("simclr-digits", ["data.memory_budget_mb=0"])
    with pytest.raises(DatasetError, match=r"data\.stream=true streams an imagefolder only; digits is loaded in"):
        load_splits(DataConfig(name="digits", stream="true"))


def corrupt(path, seed=1):
    path.write_bytes(np.random.default_rng(seed).bytes(300))
    return path


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_unreadable_file_is_a_one_line_error_naming_it_when_read(tmp_path, workers):
    root = make_mixed_folder(tmp_path)
    bad = corrupt(root / "test" / "bee" / "1.png")
    splits = load_splits(folder_config(root, stream="true", num_workers=workers))  # listing opens no file
    with pytest.raises(DatasetError) as caught:
        every_batch(splits.test)
    message = str(caught.value)
    assert message == f"cannot read image {bad}: not an image PIL can read; replace or delete it, or set " + (
        "data.skip_unreadable=true to skip unreadable images"
    )


def test_skip_unreadable_checks_a_streamed_folder_when_listed(tmp_path, capsys):
    root = make_mixed_folder(tmp_path)
    first = corrupt(root / "train" / "ant" / "0.png")
    cut = root / "train" / "cat" / "3.png"
    cut.write_bytes(cut.read_bytes()[:120])  # a real PNG cut short: its header opens, its chunks do not verify
    splits = load_splits(folder_config(root, stream="true", skip_unreadable=True))
    assert len(splits.train) + len(splits.val) == 16 and len(splits.test) == 9  # 18 - 2, test untouched
    assert capsys.readouterr().err.splitlines() == [
        f"ssl-coded: warning: skipped 2 unreadable images in {root / 'train'} (e.g. {first})"
    ]
    every_batch(splits.train)
    in_memory = load_splits(folder_config(root, stream="false", skip_unreadable=True))
    assert torch.equal(every_batch(splits.train)[0], every_batch(in_memory.train)[0])  # the same files dropped


def test_channel_stats_match_torch_on_the_whole_split():
    images = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (37, 3, 5, 7), dtype=np.uint8))
    dataset = TensorImageDataset(images, torch.zeros(37))
    mean, std = channel_stats(dataset, batch_size=8)
    pixels = images.double() / 255
    np.testing.assert_allclose(mean, pixels.mean(dim=(0, 2, 3)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(dim=(0, 2, 3)).numpy(), rtol=1e-12)


def test_streamed_neighbours_match_a_brute_force_search():
    rng = np.random.default_rng(4)
    bank = torch.from_numpy(rng.integers(0, 256, (70, 3, 4, 4), dtype=np.uint8))
    queries = torch.from_numpy(rng.integers(0, 256, (13, 48), dtype=np.uint8))
    similarity, index = streamed_neighbours(TensorImageDataset(bank, torch.zeros(70)), queries, 9, 16, 5)
    x = bank.flatten(1).double()
    q = queries.double()
    cosine = (q / q.norm(dim=1, keepdim=True)) @ (x / x.norm(dim=1, keepdim=True)).T  # float64 brute force
    expected_similarity, expected_index = cosine.topk(9, dim=1)
    assert torch.equal(index, expected_index)
    np.testing.assert_allclose(similarity.numpy(), expected_similarity.numpy(), atol=1e-6)


def test_raw_pixel_floor_wiring_streamed_as_in_memory(tmp_path):
    root = make_mixed_folder(tmp_path, per_class=12)
    streamed = raw_pixel_row(load_splits(folder_config(root, stream="true")))
    assert streamed == raw_pixel_row(load_splits(folder_config(root, stream="false")))


# --- the memory test: a folder over 4x the budget pretrains and evaluates within the budget ---------------------
MEMORY_SCRIPT = r"""
import json, re, sys
from pathlib import Path

import torch

from ssl_coded.commands import evaluate_encoder
from ssl_coded.eval.settings import EvalSettings
from ssl_coded.training.loop import pretrain
from ssl_coded.training.recipes import load_config

small, large, out, stream = sys.argv[1:5]
FAST = [
    "data.name=imagefolder", "data.image_size=0", "data.num_workers=0", "data.memory_budget_mb=6",
    f"data.stream={stream}", "model.width=8", "method.hidden_dim=64", "method.projection_dim=32",
    "trainer.max_epochs=1", "trainer.batch_size=32", "trainer.limit_train_batches=4", "trainer.log_every_n_steps=1",
    "trainer.accelerator=cpu", "trainer.threads=1", "eval.bank_size=256", f"out_dir={out}",
]


def status_mib(field):
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024


def reset_peak():
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) restarts from the current RSS


def run(root, name):
    pretrain(load_config("simclr-digits", [*FAST, f"data.root={root}", f"name={name}"]))
    # floors=False: evaluation's raw-pixel floor keeps every train image as float features in memory
    evaluate_encoder(Path(out) / name, EvalSettings(("knn",), plots=False, floors=False, device="cpu"))


run(small, "first")  # imports and first calls: their transient peaks must not hide the large run's
reset_peak()
run(small, "warm-up")  # model, trainer and the batch-sized buffers of every pass: the baseline
before = status_mib("VmHWM")
reset_peak()
run(large, "large")
state = torch.load(Path(out) / "large" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
model = sum(t.numel() * t.element_size() for t in state.values()) / 2**20
print(json.dumps({"growth_mib": status_mib("VmHWM") - before, "model_mib": model, "baseline_mib": before}))
"""


def make_png_folder(root, counts, classes=4, size=64, seed=0):
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count // classes):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def peak_growth(tmp_path, streams):
    """{stream setting: the memory script's figures}, each in its own process, run side by side."""
    small, large = tmp_path / "small", tmp_path / "large"
    # glibc raises its mmap threshold once a large block is freed, then serves batch-sized tensors from a heap
    # that fragments: the peak would count what the allocator keeps cached. A fixed threshold gives every
    # large tensor its own mapping, returned when freed, so the peak counts what the process holds.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "MALLOC_MMAP_THRESHOLD_": "65536"}
    env |= {"SSL_CODED_BF16": "0"}  # no calibration: its timed products would raise the warm-up's peak
    processes = {
        stream: subprocess.Popen(
            [sys.executable, "-c", MEMORY_SCRIPT, str(small), str(large), str(tmp_path / f"runs-{stream}"), stream],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for stream in streams
    }
    out = {}
    for stream, process in processes.items():
        stdout, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr[-3000:]
        out[stream] = json.loads(stdout.strip().splitlines()[-1])
    return out


@pytest.mark.slow
def test_folder_over_the_memory_budget_pretrains_and_evaluates_within_it(tmp_path):
    """2,048 train images of 64x64 (and 64 each for validation and test: 2,176 files, 26.7 MiB decoded) under
    data.memory_budget_mb=6, which holds 512: the peak memory grows by less than the budget plus the model.
    (What does grow with the image count is feature-sized: the features of every split and the searches
    over them, a few bytes per image beside the 12,288 of its pixels.)

    The baseline is the peak of a warm-up run (the same recipe, pretrained and evaluated, on 512 train
    images of the same validation and test sizes): model, trainer and every pass's batch-sized buffers.
    A first run before it takes the imports' and first calls' transient peaks (the peak is restarted
    after each run, /proc/self/clear_refs). The large run differs in the number of full batches only, so
    anything it holds for its size shows as growth; the in-memory path, measured the same way, must show it.
    """
    make_png_folder(tmp_path / "small", {"train": 512, "val": 64, "test": 64})
    make_png_folder(tmp_path / "large", {"train": 2048, "val": 64, "test": 64})
    budget = 6.0
    measured = peak_growth(tmp_path, ("auto", "false"))  # auto streams: 2,176 x 12,288 bytes is over the budget
    streamed, in_memory = measured["auto"], measured["false"]
    assert streamed["growth_mib"] <= budget + streamed["model_mib"], streamed
    assert in_memory["growth_mib"] > budget + in_memory["model_mib"], in_memory
    print(f"peak growth: streamed {streamed}, in memory {in_memory}")
