import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_coded.search.exact_search import (
    ExactIndex,
    SearchStats,
    block_max_candidates,
    candidate_columns,
    exact_search,
    fp32_block_width,
)


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


@pytest.mark.parametrize(("num_bank", "k"), [(5000, 200), (5003, 20), (4097, 1), (700, 150), (129, 128)])
def test_the_fp32_search_equals_the_plain_product_and_topk(num_bank, k):
    # the block-max selection of the fp32 path: bank sizes off the padding, k from 1 to nearly the bank
    generator = torch.Generator().manual_seed(num_bank)
    bank, queries = torch.randn(num_bank, 48, generator=generator), torch.randn(70, 48, generator=generator)
    index = ExactIndex(bank, chunk_size=32, bf16=False)
    similarity, neighbours = index.search(queries, k)
    reference = fp32_brute_force(bank, queries, k)
    assert_same_answer((similarity, neighbours), reference)
    assert torch.equal(similarity, similarity.sort(dim=1, descending=True).values)  # best first
    assert int(neighbours.max()) < num_bank  # no padding row
    assert index.search(queries[:5], k)[1].shape == (5, k)  # a smaller chunk reuses the buffer


def test_block_widths_balance_the_two_top_k_passes():
    assert fp32_block_width(50_048, 200) == 16  # sqrt(50,048 / 200) is about 16
    assert fp32_block_width(50_048, 20) == 64  # capped at the padding
    assert fp32_block_width(256, 200) == 1  # k near the bank: a plain top-k
    for columns, k in ((50_048, 200), (3008, 20), (640, 5)):
        width = fp32_block_width(columns, k)
        assert width == 1 or (64 % width == 0 and k * width * 2 <= columns)


def test_block_max_candidates_hold_each_rows_top_c():
    generator = torch.Generator().manual_seed(4)
    scores = torch.randn(30, 1024, generator=generator)
    values, best_blocks = block_max_candidates(scores, 25, 8)
    assert values.shape == (30, 25 * 8)
    top, position = values.topk(25, dim=1)
    columns = candidate_columns(position, best_blocks, 1024 // 8)
    expected = torch.from_numpy(np.sort(scores.numpy(), axis=1)[:, ::-1][:, :25].copy())
    assert torch.equal(top, expected)
    assert torch.equal(scores.gather(1, columns), top)  # the columns point at those scores
