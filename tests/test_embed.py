"""`ssl-coded embed`: every image's embedding with its split and label, resumable, a FAISS index that agrees
with the exact search."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ssl_coded.embed as embed_module
from ssl_coded.cli import main
from ssl_coded.data import load_splits
from ssl_coded.data.config import DataConfig
from ssl_coded.embed import EmbedSettings, embed
from ssl_coded.rundir import RunInterrupted
from ssl_coded.search.knn import KnnBank
from ssl_coded.training.checkpoints import load_trained

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={out}", "name=x"]) == 0
    return out / "x"


def read_items(folder):
    with open(folder / "items.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_image_of_every_split_with_its_split_label_and_the_runs_features(run, tmp_path, capsys):
    assert main(["embed", str(run), "--dataset", "name=digits", "--out", str(tmp_path / "e")]) == 0
    folder = tmp_path / "e"
    vectors = np.load(folder / "embeddings.npy")
    items = read_items(folder)
    assert vectors.shape == (1797, 128) and vectors.dtype == np.float32 and len(items) == 1797
    trained = load_trained(run)  # the run's own features, computed without the embed code
    row = 0
    for split in ("train", "val", "test"):
        dataset = getattr(trained.splits, split)
        expected = trained.features(dataset.images).numpy()
        chosen = [item for item in items if item["split"] == split]
        assert [int(item["row"]) for item in chosen] == list(range(row, row + len(dataset)))
        assert [int(item["label"]) for item in chosen] == dataset.labels.tolist()
        difference = float(np.abs(vectors[row : row + len(dataset)] - expected).max())
        assert difference <= 1e-5, (split, difference)
        row += len(dataset)
    record = json.loads((folder / "embed.json").read_text())
    assert record["schema_version"] == 1 and record["rows"] == 1797 and record["dim"] == 128
    assert record["encoder"]["checkpoint_hash"] == trained.checkpoint_hash and record["versions"]["torch"]
    assert record["command"] == ["ssl-coded", "embed", str(run), "--dataset", "name=digits", "--out", str(folder)]
    # finished embeddings are never rewritten
    before = (folder / "embeddings.npy").stat().st_mtime_ns
    assert main(["embed", str(run), "--out", str(folder)]) == 2
    assert "already holds finished embeddings" in capsys.readouterr().err
    assert (folder / "embeddings.npy").stat().st_mtime_ns == before


def test_float16_normalised_rows_and_a_faiss_index_that_finds_the_exact_neighbours(run, tmp_path):
    faiss = pytest.importorskip("faiss")
    settings = EmbedSettings(splits=("test",), dtype="float16", normalize=True, index="flat")
    folder = embed(run, tmp_path / "e", settings)
    vectors = np.load(folder / "embeddings.npy")
    assert vectors.dtype == np.float16 and vectors.shape == (360, 128)
    assert np.allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1.0, atol=2e-3)
    index = faiss.read_index(str(folder / "index.faiss"))
    bank = torch.from_numpy(vectors.astype(np.float32))
    queries = bank[::9]
    _, found = index.search(np.ascontiguousarray(queries.numpy()), 10)
    _, exact = KnnBank(bank).search(queries, 10)
    assert (torch.from_numpy(found) == exact).float().mean() >= 0.99  # ties in float16 may swap a pair


def test_an_interrupted_embed_continues_from_its_last_split_and_others_are_refused(run, tmp_path, monkeypatch):
    calls = []
    real_fill = embed_module._fill

    def interrupted_on_the_second_split(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise RunInterrupted(2)
        return real_fill(*args, **kwargs)

    monkeypatch.setattr(embed_module, "_fill", interrupted_on_the_second_split)
    folder = tmp_path / "e"
    with pytest.raises(RunInterrupted):
        embed(run, folder)
    assert not (folder / "embeddings.npy").exists() and not (folder / "embed.json").exists()
    assert (folder / "embeddings.npy.partial").exists()  # never a half-written file under the final name
    with pytest.raises(ValueError, match="interrupted embed of another encoder"):
        embed(run, folder, EmbedSettings(dtype="float16"))
    monkeypatch.setattr(embed_module, "_fill", interrupted_on_the_second_split)
    calls.clear()
    calls += ["past", "the interruption"]  # counted from here, the resumed embed is not interrupted again
    resumed = np.load(embed(run, folder) / "embeddings.npy")
    assert calls[2:] == ["val", "test"]  # the finished train split was not embedded again
    monkeypatch.setattr(embed_module, "_fill", real_fill)
    whole = np.load(embed(run, tmp_path / "whole") / "embeddings.npy")
    assert np.array_equal(resumed, whole)
    assert sorted(p.name for p in folder.iterdir()) == ["embed.json", "embeddings.npy", "items.csv"]


@pytest.mark.parametrize("stream", ["true", "false"])
def test_an_image_folder_lists_its_files(tmp_path, stream):
    """Streamed or decoded in memory, each row's path is the file its pixels came from."""
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for kind in ("a", "b"):
            (root / split / kind).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
                    root / split / kind / f"{i}.png"
                )
    data = ["name=imagefolder", f"root={root}", "image_size=12", f"stream={stream}", "val_fraction=0.25"]
    folder = embed("torchvision:resnet18", tmp_path / "e", EmbedSettings(splits=("train", "test")), data=data)
    items = read_items(folder)
    assert len(items) == 14 and {item["split"] for item in items} == {"train", "test"}
    assert all(
        (root / item["split"] / ("a" if item["label"] == "0" else "b")).samefile(Path(item["path"]).parent)
        for item in items
    )
    config = DataConfig(name="imagefolder", root=str(root), image_size=12, stream=stream, val_fraction=0.25)
    splits = load_splits(config)
    for item in items:  # the random images are all different: equal pixels name the file
        images, _ = getattr(splits, item["split"]).take([int(item["index"])])
        pixels = np.asarray(Image.open(item["path"]).convert("RGB")).transpose(2, 0, 1)
        assert np.array_equal(images[0].numpy(), pixels), item


def test_a_folder_of_other_files_and_float16_overflow_are_refused(run, tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    with pytest.raises(ValueError, match="holds other files"):
        embed(run, tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    real = embed_module._on_device
    monkeypatch.setattr(embed_module, "_on_device", lambda m, d: lambda x: real(m, d)(x) * 1e6)
    with pytest.raises(ValueError, match="non-finite float16 embeddings"):
        embed(run, tmp_path / "big", EmbedSettings(splits=("test",), dtype="float16"))
    assert not (tmp_path / "big" / "embeddings.npy").exists()


def test_bad_settings_are_refused_before_the_encoder_loads(tmp_path, capsys):
    assert main(["embed", "runs/none", "--out", str(tmp_path / "e"), "--split", "train,nope"]) == 2
    assert "--split 'train,nope'" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
