import numpy as np
import pytest
import torch

from ssl_coded.search import calibration
from ssl_coded.search.knn import PRESETS, KnnBank, knn_metrics, knn_predict
from tests.oracles import brute_force_knn


@pytest.fixture(autouse=True)
def calibration_cache(monkeypatch, tmp_path_factory):
    """The default backend is measured here at most once, into a temporary cache, never the home one."""
    monkeypatch.setenv("SSL_CODED_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ssl-coded-cache"))


def random_features(n_bank=600, n_query=80, dim=12, classes=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    bank, queries = torch.randn(n_bank, dim, generator=generator), torch.randn(n_query, dim, generator=generator)
    return bank, torch.randint(0, classes, (n_bank,), generator=generator), queries


def test_weighted_votes_on_a_hand_built_case():
    # query at angle 0; two class-1 neighbours at small angles, three class-0 ones further away
    angles = torch.tensor([0.1, 0.2, 1.0, 1.1, 1.2])
    bank = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    labels = torch.tensor([1, 1, 0, 0, 0])
    query = torch.tensor([[1.0, 0.0]])
    # with a low temperature the two close votes win; with a high one the three far ones do
    assert knn_predict(bank, labels, query, num_classes=2, k=5, temperature=0.05)[0, 0] == 1
    assert knn_predict(bank, labels, query, num_classes=2, k=5, temperature=100.0)[0, 0] == 0
    assert knn_predict(bank, labels, query, num_classes=2, k=2, temperature=100.0)[0, 0] == 1


@pytest.mark.parametrize("bf16", [False, True])
def test_predictions_equal_a_float64_brute_force(bf16):
    bank, labels, queries = random_features(n_bank=3000, dim=16)
    knn = KnnBank(bank * 3.0, labels, bf16=bf16)  # scale must not matter: rows are normalised
    for k, temperature in ((20, 0.07), (200, 0.1), (1, 0.1)):
        expected = brute_force_knn(bank.numpy(), labels.numpy(), queries.numpy(), 5, k, temperature)
        assert np.array_equal(knn.predict(queries, 5, k, temperature)[:, 0].numpy(), expected[:, 0]), (k, bf16)


def test_metrics_of_both_presets_equal_the_brute_force():
    bank, labels, queries = random_features(seed=1)
    query_labels = torch.randint(0, 5, (len(queries),), generator=torch.Generator().manual_seed(9))
    metrics = knn_metrics(bank, labels, queries, query_labels, 5)
    for preset, (k, temperature) in PRESETS.items():
        ranked = brute_force_knn(bank.numpy(), labels.numpy(), queries.numpy(), 5, k, temperature)
        top1 = np.mean(ranked[:, 0] == query_labels.numpy())
        top5 = np.mean((ranked[:, :5] == query_labels.numpy()[:, None]).any(axis=1))
        assert metrics[f"knn_{preset}_top1"] == pytest.approx(top1)
        assert metrics[f"knn_{preset}_top5"] == pytest.approx(top5)


def test_a_bank_smaller_than_k_votes_with_every_row():
    bank, labels, queries = random_features(n_bank=30, n_query=10)
    expected = brute_force_knn(bank.numpy(), labels.numpy(), queries.numpy(), 5, 30, 0.1)
    assert np.array_equal(knn_predict(bank, labels, queries, 5, k=200, temperature=0.1).numpy(), expected)


def test_accuracy_on_separable_clusters():
    generator = torch.Generator().manual_seed(1)
    centers = torch.eye(4) * 5
    labels = torch.arange(4).repeat(25)
    features = centers[labels] + torch.randn(100, 4, generator=generator)
    assert knn_metrics(features, labels, features, labels, 4)["knn_dino_top1"] == 1.0


@pytest.mark.parametrize("bf16", [False, True])
def test_predictions_are_exact_under_bf16_autocast(bf16):
    bank, labels, queries = random_features(n_bank=3000, n_query=40, dim=16, classes=4, seed=2)
    expected = brute_force_knn(bank.numpy(), labels.numpy(), queries.numpy(), 4, 20, 0.07)[:, 0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ranked = KnnBank(bank, labels, bf16=bf16).predict(queries, 4, k=20, temperature=0.07)
    assert np.array_equal(ranked[:, 0].numpy(), expected)


def test_mismatched_dimensions_are_refused():
    bank, labels, queries = random_features(n_bank=50, n_query=5, dim=32)
    with pytest.raises(ValueError, match="dimension 32 but queries 8; extract both with the same encoder"):
        knn_predict(bank, labels, queries[:, :8], 5)


@pytest.mark.parametrize("backend", ["bf16", "fp32"])
def test_the_default_search_is_the_calibrations_choice(monkeypatch, backend):
    monkeypatch.setattr(calibration, "knn_backend", lambda: backend)
    bank, labels, _ = random_features(n_bank=40)
    assert KnnBank(bank, labels).index.bf16 == (backend == "bf16")
    assert KnnBank(bank, labels, bf16=backend != "bf16").index.bf16 == (backend != "bf16")  # explicit wins


def test_the_override_reaches_the_default_search(monkeypatch, tmp_path):
    monkeypatch.setenv("SSL_CODED_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SSL_CODED_KNN_BACKEND", "bf16")
    bank, labels, _ = random_features(n_bank=40)
    assert KnnBank(bank, labels).index.bf16
    monkeypatch.setenv("SSL_CODED_KNN_BACKEND", "fp32")
    assert not KnnBank(bank, labels).index.bf16
