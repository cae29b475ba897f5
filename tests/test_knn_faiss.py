import torch
from lightly.utils.benchmarking import knn_predict as lightly_knn_predict
from ssl_coded.eval.knn_faiss import KnnIndex, faiss_knn_predict

from ssl_coded.knn import knn_predict


def random_features(n_bank=2000, n_query=300, dim=32, classes=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    bank, queries = torch.randn(n_bank, dim, generator=generator), torch.randn(n_query, dim, generator=generator)
    return bank, torch.randint(0, classes, (n_bank,), generator=generator), queries


def test_exact_faiss_equals_the_torch_reference():
    bank, labels, queries = random_features()
    for k, temperature in ((20, 0.07), (200, 0.1), (1, 0.1)):
        reference = knn_predict(bank, labels, queries, 7, k, temperature)
        for kind in ("exact", "flat"):
            index = KnnIndex(bank, kind)
            assert torch.equal(faiss_knn_predict(bank, labels, queries, 7, k, temperature, index), reference), kind


def test_exact_faiss_agrees_with_lightly_on_the_instdisc_preset():
    bank, labels, queries = random_features(seed=1)
    normalised = torch.nn.functional.normalize
    theirs = lightly_knn_predict(normalised(queries, dim=1), normalised(bank, dim=1).T, labels, 7, 200, 0.1)
    ours = faiss_knn_predict(bank, labels, queries, 7, 200, 0.1)
    assert torch.equal(ours[:, 0], theirs[:, 0])


def test_ivf_on_clustered_features_matches_exact_top1():
    generator = torch.Generator().manual_seed(2)
    centers = torch.randn(10, 16, generator=generator) * 4
    labels = torch.arange(10).repeat(300)
    bank = centers[labels] + torch.randn(3000, 16, generator=generator)
    queries = centers[torch.arange(10).repeat(20)] + torch.randn(200, 16, generator=generator)
    exact = faiss_knn_predict(bank, labels, queries, 10, 20, 0.07)
    ivf = faiss_knn_predict(bank, labels, queries, 10, 20, 0.07, index=KnnIndex(bank, "ivf", nlist=20, nprobe=4))
    agreement = (exact[:, 0] == ivf[:, 0]).float().mean()
    assert agreement >= 0.99


def test_mismatched_dimensions_are_refused_by_both():
    import pytest

    bank, labels, queries = random_features(n_bank=50, n_query=5)
    for predict in (knn_predict, faiss_knn_predict):
        with pytest.raises(ValueError, match="dimension 32 but queries 8; extract both with the same encoder"):
            predict(bank, labels, queries[:, :8], 7)
