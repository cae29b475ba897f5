import json

import numpy as np
import pytest
import torch
from ssl_coded.eval import evaluate, knn, raw_pixels, retrieval

from tests.oracles import brute_force_knn


def clustered(n: int, dim: int = 16, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim)) * 2
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def test_knn_equals_the_brute_force_for_numpy_and_torch_inputs():
    (bank, bank_y), (queries, query_y) = clustered(500), clustered(60, seed=1)
    from_numpy = knn(bank, bank_y, queries, query_y)
    from_torch = knn(torch.from_numpy(bank), torch.from_numpy(bank_y), torch.from_numpy(queries), query_y.tolist())
    assert from_numpy == from_torch
    for preset, (k, temperature) in (("dino", (20, 0.07)), ("instdisc", (200, 0.1))):
        ranked = brute_force_knn(bank, bank_y, queries, 4, k, temperature)
        assert from_numpy[f"knn_{preset}_top1"] == pytest.approx(np.mean(ranked[:, 0] == query_y))
        assert from_numpy[f"knn_{preset}_top5"] == pytest.approx(1.0)  # 4 classes: always in the top 5


def test_retrieval_recall_equals_a_brute_force_ranking():
    (gallery, gallery_y), (queries, query_y) = clustered(300), clustered(40, seed=2)
    scores = retrieval(gallery, gallery_y, queries, query_y)
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    order = np.argsort(-(queries @ unit.T), axis=1, kind="stable")  # cosine ranking, query norm irrelevant
    for k in (1, 5, 10):
        expected = np.mean([(gallery_y[row[:k]] == y).any() for row, y in zip(order, query_y, strict=True)])
        assert scores[f"recall@{k}"] == pytest.approx(expected)
    assert 0 < scores["map@r"] <= 1


def test_mismatched_inputs_are_refused():
    (bank, bank_y), (queries, query_y) = clustered(50), clustered(10)
    with pytest.raises(ValueError, match="train: 50 features but 49 labels"):
        knn(bank, bank_y[:-1], queries, query_y)
    with pytest.raises(ValueError, match="dimension"):
        knn(bank, bank_y, queries[:, :3], query_y)


def image_dataset(n: int, seed: int) -> torch.utils.data.TensorDataset:
    """(float image, label) pairs whose class shows in their mean brightness."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    images = torch.rand(n, 1, 6, 6, generator=generator) * 0.5 + labels.view(-1, 1, 1, 1) * 0.4
    return torch.utils.data.TensorDataset(images, labels)


def test_evaluate_any_module_on_any_dataset(tmp_path):
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 8))
    train, test = image_dataset(240, 0), image_dataset(60, 1)
    rows = evaluate(encoder, train, test, floors={"raw pixels": raw_pixels()}, device="cpu", out_dir=tmp_path, key="k")
    assert set(rows) == {"encoder", "raw pixels"}
    expected = {"knn_dino_top1", "knn_instdisc_top5", "recall@10", "map@r", "linear_top1", "linear_c"}
    assert expected <= set(rows["encoder"])
    with torch.no_grad():  # the kNN of features extracted by hand, on the whole train split
        train_x, test_x = encoder(train.tensors[0]).numpy(), encoder(test.tensors[0]).numpy()
    assert rows["encoder"]["knn_dino_top1"] == pytest.approx(
        knn(train_x, train.tensors[1], test_x, test.tensors[1])["knn_dino_top1"]
    )
    assert rows["raw pixels"]["linear_top1"] > 0.8
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"]["encoder"]["map@r"] == rows["encoder"]["map@r"]
    assert list((tmp_path / "features").glob("train-*.features.npy"))  # keyed: cached


def test_evaluate_without_an_output_folder_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = evaluate(torch.nn.Flatten(), image_dataset(100, 0), image_dataset(30, 1), protocols=("knn",), device="cpu")
    assert "linear_top1" not in rows["encoder"] and not list(tmp_path.iterdir())


def test_a_device_that_is_not_there_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA device; use --device cpu"):
        evaluate(torch.nn.Flatten(), image_dataset(10, 0), image_dataset(10, 1), device="cuda")
    with pytest.raises(ValueError, match="is not auto, cpu, cuda or cuda:N"):
        evaluate(torch.nn.Flatten(), image_dataset(10, 0), image_dataset(10, 1), device="gpu0")
