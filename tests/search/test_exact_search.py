import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_coded.search.exact_search import (
    ExactIndex,
    SearchStats,
    _top_k_per_query,
    block_max_candidates,
    candidate_cap,
    candidate_columns,
    exact_search,
    fp32_block_width,
)


def fp32_brute_force(bank, queries, k):
    return (F.normalize(queries, dim=1) @ F.normalize(bank, dim=1).T).topk(k, dim=1)


def assert_same_answer(ours, reference, bank=None, queries=None):
    """The same similarities, best first, and the same neighbours; with the bank and the queries, a
    neighbour may differ where its fp32 similarity ties the k-th within fp32 rounding (the re-rank sums
    in another order than the brute-force product)."""
    (similarity, index), (ref_similarity, ref_index) = ours, reference
    assert torch.allclose(similarity, ref_similarity, atol=1e-6, rtol=0)
    if bank is None:
        assert torch.equal(index.sort(dim=1).values, ref_index.sort(dim=1).values)
        return
    true = F.normalize(queries, dim=1) @ F.normalize(bank, dim=1).T
    assert torch.allclose(true.gather(1, index), similarity, atol=1e-6, rtol=0)  # each similarity is its row's
    assert all(len(set(row.tolist())) == index.shape[1] for row in index)  # no row twice
    differ = index.sort(dim=1).values != ref_index.sort(dim=1).values
    assert differ.any(dim=1).float().mean() < 0.05  # ties are rare


def test_equals_fp32_brute_force_on_random_features():
    generator = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(6000, 64, generator=generator), torch.randn(203, 64, generator=generator)
    stats = SearchStats()
    for k in (1, 20, 46, 200):  # 6,016 rows: the certified path up to k=47, the fp32 one above
        assert_same_answer(
            exact_search(bank, queries, k, chunk_size=64, stats=stats), fp32_brute_force(bank, queries, k)
        )
    assert stats.queries == 4 * 203  # chunks of 64 and a last one of 11
    assert stats.reranked >= 203 * (1 + 20 + 46)  # the bf16 path ran, each answer re-ranked in fp32
    assert stats.fallbacks < 0.05 * 3 * 203


def near_duplicates(count, seed, num_queries=50):
    # `count` rows that bf16 cannot tell apart, among 4,000 random ones
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(1, 32, generator=generator)
    noise = 1e-3 * torch.randn(count, 32, generator=generator)
    bank = torch.cat([base + noise, torch.randn(4000, 32, generator=generator)])
    return bank, base + 0.5 * torch.randn(num_queries, 32, generator=generator)


def test_near_duplicates_below_bf16_resolution_are_all_re_ranked_and_certified():
    # all 500 share one bf16 score, so all reach the threshold and fp32 orders them
    bank, queries = near_duplicates(500, seed=1)
    stats = SearchStats()
    ours = exact_search(bank, queries, k=10, stats=stats)
    assert stats.fallbacks == 0 and stats.reranked >= 500 * 50
    assert_same_answer(ours, fp32_brute_force(bank, queries, 10), bank, queries)


def test_more_near_duplicates_than_the_candidate_cap_fall_back_to_fp32():
    bank, queries = near_duplicates(candidate_cap(10) + 100, seed=5)
    stats = SearchStats()
    ours = exact_search(bank, queries, k=10, stats=stats)
    assert stats.fallbacks == 50  # every query's candidates exceed the cap
    assert stats.reranked == 0  # dropped before their candidates were listed: memory stays bounded
    assert_same_answer(ours, fp32_brute_force(bank, queries, 10))


def test_an_index_that_bf16_cannot_separate_searches_in_fp32_from_then_on():
    bank, queries = near_duplicates(candidate_cap(10) + 100, seed=5, num_queries=100)
    index, first, second = ExactIndex(bank), SearchStats(), SearchStats()
    assert_same_answer(index.search(queries, 10, stats=first), fp32_brute_force(bank, queries, 10))
    assert first.fallbacks == 100 and not index.bf16 and index.bank16 is None  # most of a chunk fell back
    assert_same_answer(index.search(queries, 10, stats=second), fp32_brute_force(bank, queries, 10))
    assert second.fallbacks == second.reranked == 0  # the fp32 product, no certificate to fail


def test_the_retry_settles_scores_packed_closer_than_the_rounding_bound():
    # centred scores far smaller than the rounding bound: the first threshold rarely certifies, the
    # retry two bounds (and two slacks) lower always does
    generator = torch.Generator().manual_seed(8)
    base = F.normalize(torch.randn(1, 1024, generator=generator), dim=1)
    noise = 0.005 * torch.randn(6000, 1024, generator=generator) / 32
    stats = SearchStats()
    ours = exact_search(base + noise, noise[:50].clone(), 1, stats=stats)
    assert stats.retried == 50 and stats.fallbacks == 0
    assert_same_answer(ours, fp32_brute_force(base + noise, noise[:50], 1))


def test_a_narrow_window_retries_some_queries_lower_yet_the_answer_is_exact():
    generator = torch.Generator().manual_seed(2)
    bank, queries = torch.randn(8000, 128, generator=generator), torch.randn(300, 128, generator=generator)
    wide, narrow = SearchStats(), SearchStats()
    assert_same_answer(exact_search(bank, queries, k=50, stats=wide), fp32_brute_force(bank, queries, 50))
    ours = exact_search(bank, queries, k=50, window=0.25, stats=narrow)
    assert narrow.retried > max(wide.retried, 10)  # a threshold near the k-th score often fails
    assert narrow.fallbacks == 0  # the retry, two error bounds lower, certifies every one
    assert_same_answer(ours, fp32_brute_force(bank, queries, 50))


def test_queries_whose_threshold_is_not_positive_fall_back_and_stay_exact():
    # the bank spans the first 16 dimensions; these queries lie almost outside it, so every centred bf16
    # score is near zero and no positive threshold sits a rounding bound below the k-th
    generator = torch.Generator().manual_seed(6)
    bank = F.pad(torch.randn(6000, 16, generator=generator), (0, 16))
    queries = torch.cat([1e-3 * torch.randn(20, 16, generator=generator), torch.randn(20, 16, generator=generator)], 1)
    stats = SearchStats()
    ours = exact_search(bank, queries, k=20, stats=stats)
    assert stats.fallbacks == 20
    assert_same_answer(ours, fp32_brute_force(bank, queries, 20))


def test_top_k_per_query_matches_a_loop_over_queries():
    # about 7 pairs per query, so negative values and signed zeros reach the top 5
    generator = torch.Generator().manual_seed(7)
    queries = torch.randint(0, 8, (60,), generator=generator)
    values, rows = torch.randn(60, generator=generator), torch.randperm(60, generator=generator)
    values[:3], values[3:6] = -0.0, 0.0
    counts = torch.bincount(queries, minlength=8)
    similarity, index = _top_k_per_query(values, rows, queries, counts, 5)
    value_of_row = dict(zip(rows.tolist(), values.tolist(), strict=True))
    for q in range(8):
        if counts[q] < 5:
            continue  # filler: the certificate rejects such a query on its count
        expected = sorted(values[queries == q].tolist(), reverse=True)[:5]
        assert similarity[q].tolist() == expected
        assert [value_of_row[r] for r in index[q].tolist()] == expected  # each row carries its value
        assert set(index[q].tolist()) <= set(rows[queries == q].tolist())


def test_k_is_capped_at_the_bank_and_dimensions_must_match():
    bank, queries = torch.randn(5, 8), torch.randn(3, 8)
    similarity, index = exact_search(bank, queries, k=50)
    assert similarity.shape == index.shape == (3, 5)
    with pytest.raises(ValueError, match="dimension 8 but queries 4"):
        exact_search(bank, queries[:, :4], k=2)
    with pytest.raises(ValueError, match="k >= 1 and window >= 0, got k=0"):
        exact_search(bank, queries, k=0)
    with pytest.raises(ValueError, match="window=-1"):
        exact_search(bank, queries, k=2, window=-1)
    with pytest.raises(ValueError, match="a bank of at least one row"):
        exact_search(bank[:0], queries, k=2)


def test_no_queries_and_too_few_candidates_are_handled():
    generator = torch.Generator().manual_seed(3)
    bank = torch.randn(2000, 16, generator=generator)
    similarity, index = exact_search(bank, torch.empty(0, 16), k=5)
    assert similarity.shape == index.shape == (0, 5)
    queries = torch.randn(20, 16, generator=generator)
    assert_same_answer(exact_search(bank, queries, k=30, window=0.0), fp32_brute_force(bank, queries, 30))


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
