import pytest
import torch
import torch.nn.functional as F

from ssl_coded.exact_search import SearchStats, exact_search


def fp32_brute_force(bank, queries, k):
    return (F.normalize(queries, dim=1) @ F.normalize(bank, dim=1).T).topk(k, dim=1)


def assert_same_answer(ours, reference):
    (similarity, index), (ref_similarity, ref_index) = ours, reference
    assert torch.allclose(similarity, ref_similarity, atol=1e-6, rtol=0)
    assert torch.equal(index.sort(dim=1).values, ref_index.sort(dim=1).values)


def test_equals_fp32_brute_force_on_random_features():
    generator = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(3000, 64, generator=generator), torch.randn(200, 64, generator=generator)
    stats = SearchStats()
    for k in (1, 20, 200):
        assert_same_answer(
            exact_search(bank, queries, k, chunk_size=64, stats=stats), fp32_brute_force(bank, queries, k)
        )
    assert stats.queries == 600


def test_near_duplicates_below_bf16_resolution_fall_back_to_fp32_and_stay_exact():
    # 500 rows that bf16 cannot tell apart: the bf16 top candidates are arbitrary among them, so only
    # the certificate's fallback can return the right k
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(1, 32, generator=generator)
    bank = torch.cat(
        [base + 1e-4 * torch.randn(500, 32, generator=generator), torch.randn(500, 32, generator=generator)]
    )
    queries = base + 0.5 * torch.randn(50, 32, generator=generator)
    stats = SearchStats()
    ours = exact_search(bank, queries, k=10, num_candidates=20, stats=stats)
    assert stats.fallbacks == 50
    assert_same_answer(ours, fp32_brute_force(bank, queries, 10))


def test_few_candidates_trigger_some_fallbacks_yet_the_answer_is_exact():
    generator = torch.Generator().manual_seed(2)
    bank, queries = torch.randn(4000, 128, generator=generator), torch.randn(300, 128, generator=generator)
    stats = SearchStats()
    ours = exact_search(bank, queries, k=50, num_candidates=52, stats=stats)
    assert 0 < stats.fallbacks < stats.queries
    assert_same_answer(ours, fp32_brute_force(bank, queries, 50))


def test_k_is_capped_at_the_bank_and_dimensions_must_match():
    bank, queries = torch.randn(5, 8), torch.randn(3, 8)
    similarity, index = exact_search(bank, queries, k=50)
    assert similarity.shape == index.shape == (3, 5)
    with pytest.raises(ValueError, match="dimension 8 but queries 4"):
        exact_search(bank, queries[:, :4], k=2)


def test_no_queries_and_too_few_candidates_are_handled():
    generator = torch.Generator().manual_seed(3)
    bank = torch.randn(2000, 16, generator=generator)
    similarity, index = exact_search(bank, torch.empty(0, 16), k=5)
    assert similarity.shape == index.shape == (0, 5)
    queries = torch.randn(20, 16, generator=generator)
    assert_same_answer(exact_search(bank, queries, k=30, num_candidates=3), fp32_brute_force(bank, queries, 30))
