import torch

from ssl_coded.knn import knn_accuracy, knn_predict


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


def test_features_are_normalised_and_chunks_agree():
    generator = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(200, 8, generator=generator), torch.randn(50, 8, generator=generator)
    labels = torch.randint(0, 5, (200,), generator=generator)
    whole = knn_predict(bank, labels, queries, 5, k=10, temperature=0.1)
    chunked = knn_predict(bank * 3.0, labels, queries * 0.5, 5, k=10, temperature=0.1, chunk_size=7)
    assert torch.equal(whole[:, 0], chunked[:, 0])


def test_accuracy_on_separable_clusters():
    generator = torch.Generator().manual_seed(1)
    centers = torch.eye(4) * 5
    labels = torch.arange(4).repeat(25)
    features = centers[labels] + torch.randn(100, 4, generator=generator)
    assert knn_accuracy(features, labels, features, labels, "dino") == 1.0


def test_predictions_are_fp32_under_bf16_autocast():
    generator = torch.Generator().manual_seed(2)
    bank, queries = torch.randn(300, 16, generator=generator), torch.randn(40, 16, generator=generator)
    labels = torch.randint(0, 4, (300,), generator=generator)
    reference = knn_predict(bank, labels, queries, 4, k=20, temperature=0.07)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(knn_predict(bank, labels, queries, 4, k=20, temperature=0.07), reference)
