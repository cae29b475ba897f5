import numpy as np
import pytest
import torch
from lightly.utils.benchmarking import knn_predict as lightly_knn_predict
from ssl_coded.eval.knn_faiss import FaissIndex, make_index

from ssl_coded.search.knn import KnnBank, rank_classes
from tests.oracles import brute_force_knn


def random_features(n_bank=2000, n_query=300, dim=32, classes=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    bank, queries = torch.randn(n_bank, dim, generator=generator), torch.randn(n_query, dim, generator=generator)
    return bank, torch.randint(0, classes, (n_bank,), generator=generator), queries


def predict(index, labels, queries, k, temperature):
    similarity, neighbours = index.search(queries, k)
    return rank_classes(similarity, labels[neighbours.clamp(min=0)], int(labels.max()) + 1, temperature)


def test_exact_and_faiss_flat_equal_the_brute_force():
    bank, labels, queries = random_features()
    for k, temperature in ((20, 0.07), (200, 0.1), (1, 0.1)):
        expected = brute_force_knn(bank.numpy(), labels.numpy(), queries.numpy(), 7, k, temperature)[:, 0]
        for kind in ("exact", "flat"):
            ours = predict(make_index(bank, kind), labels, queries, k, temperature)[:, 0].numpy()
            assert np.array_equal(ours, expected), kind


def test_exact_agrees_with_lightly_on_the_instdisc_preset():
    bank, labels, queries = random_features(seed=1)
    normalised = torch.nn.functional.normalize
    theirs = lightly_knn_predict(normalised(queries, dim=1), normalised(bank, dim=1).T, labels, 7, 200, 0.1)
    ours = KnnBank(bank, labels).predict(queries, 7, 200, 0.1)
    assert torch.equal(ours[:, 0], theirs[:, 0])


def test_ivf_on_clustered_features_matches_exact_top1():
    generator = torch.Generator().manual_seed(2)
    centers = torch.randn(10, 16, generator=generator) * 4
    labels = torch.arange(10).repeat(300)
    bank = centers[labels] + torch.randn(3000, 16, generator=generator)
    queries = centers[torch.arange(10).repeat(20)] + torch.randn(200, 16, generator=generator)
    exact = predict(make_index(bank), labels, queries, 20, 0.07)
    ivf = predict(FaissIndex(bank, "ivf", nlist=20, nprobe=4), labels, queries, 20, 0.07)
    assert (exact[:, 0] == ivf[:, 0]).float().mean() >= 0.99


def test_mismatched_dimensions_and_unknown_kinds_are_refused():
    bank, _, queries = random_features(n_bank=50, n_query=5)
    with pytest.raises(ValueError, match="dimension 32 but queries 8; extract both with the same encoder"):
        make_index(bank, "flat").search(queries[:, :8], 5)
    with pytest.raises(ValueError, match="unknown index 'hnsw'"):
        make_index(bank, "hnsw")
