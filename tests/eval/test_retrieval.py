import pytest
import torch
from ssl_coded.eval.retrieval import map_at_r, recall_at_k


def test_recall_at_k_on_a_hand_built_case():
    neighbours = torch.tensor([[1, 0, 0], [0, 0, 1], [2, 2, 2]])
    queries = torch.tensor([1, 1, 0])
    assert recall_at_k(neighbours, queries, (1, 2, 3)) == pytest.approx({1: 1 / 3, 2: 1 / 3, 3: 2 / 3})


def test_map_at_r_on_hand_built_cases():
    gallery = torch.tensor([0, 0, 1, 1, 1])  # R = 2 for class 0, 3 for class 1
    # class-0 query: relevant at ranks 1 and 3 -> within R=2 only rank 1 counts: (1/2) * (1/1) = 0.5
    # class-1 query: relevant at ranks 1, 2, 3 -> (1/3) * (1 + 1 + 1) = 1
    neighbours = torch.tensor([[0, 1, 0, 1, 1], [1, 1, 1, 0, 0]])
    assert map_at_r(neighbours, torch.tensor([0, 1]), gallery) == pytest.approx(0.75)
    # a perfect ranking scores 1, a reversed one 0
    assert map_at_r(torch.tensor([[0, 0, 1, 1, 1]]), torch.tensor([0]), gallery) == 1.0
    assert map_at_r(torch.tensor([[1, 1, 1, 0, 0]]), torch.tensor([0]), gallery) == 0.0


def test_metrics_refuse_short_lists_and_missing_classes():
    with pytest.raises(ValueError, match="recall@5 needs at least 5"):
        recall_at_k(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long), (1, 5))
    with pytest.raises(ValueError, match="mAP@R needs 3 neighbours"):
        map_at_r(torch.zeros(1, 2, dtype=torch.long), torch.tensor([1]), torch.tensor([0, 1, 1, 1]))
    with pytest.raises(ValueError, match="absent from the gallery"):
        map_at_r(torch.zeros(1, 4, dtype=torch.long), torch.tensor([2]), torch.tensor([0, 1, 1, 1]))
