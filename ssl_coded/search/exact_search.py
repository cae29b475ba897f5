"""Exact top-k inner-product search that does its heavy product in bf16 and still returns the fp32 answer.

On CPUs with native bf16 (AVX512-BF16, AMX) a bf16 matrix product can run much faster than the fp32
one (`benchmarks/bench_knn.py` measures both), which is the floor of every exact fp32 search (FAISS
IndexFlatIP, lightly's `knn_predict`). The search scores every bank row in bf16, keeps for each query
the rows whose bf16 score reaches a threshold just below its k-th best, recomputes their similarities
in fp32 and keeps the k best. A per-query certificate proves that no row below the threshold can beat
the k-th: the bf16 score of any row is within a bound of its fp32 score, the bound taken from the
measured rounding of the query and the bank, the rounding of the bf16 output and fp32 accumulation.
A query whose certificate fails is tried once more with a threshold low enough to certify it (unless
too many rows reach that threshold), and then searched again in fp32, so every answer equals the fp32
brute-force search (up to fp32 rounding of the re-rank). Where most queries of a chunk need the fp32
search (scores too close together for bf16 to separate), the index searches in fp32 from then on.

Where bf16 products are not faster (no native bf16; `ssl_coded.search.calibration` measures it once per
machine), the search is the fp32 product itself, made cheaper than a plain product + top-k in two
ways: the scores go into one buffer reused for every chunk (a fresh chunk-sized tensor per product
costs page faults comparable to a good share of the product), and the top-k of each row runs on
the few blocks of columns whose maxima are the row's largest, not on the whole bank. The answer is
the plain fp32 product's top-k.

Example:
    >>> similarity, neighbours = exact_search(bank, queries, k=200)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

BF16_UNIT_ROUNDOFF = 2.0**-8
FP32_UNIT_ROUNDOFF = 2.0**-24


class _Chunk(NamedTuple):
    """What every attempt on one chunk of queries reuses: its bf16 scores and bounds."""

    query32: Tensor  # (m, dim) normalised queries
    bits: Tensor  # (padded bank rows, m) bf16 scores read as int16
    block_max: Tensor  # (blocks, m) their block maxima
    kth: Tensor  # (m,) a lower bound on each query's k-th best bf16 score
    error: Tensor  # (m,) |fp32 - bf16| of a centred score, bar the output's rounding
    shift: Tensor  # (m,) q.mean, which the centred scores lack, plus the shift's rounding


@dataclass
class SearchStats:
    """How many queries the bf16 certificate settled, and how many fell back to an fp32 search."""

    queries: int = 0
    fallbacks: int = 0
    reranked: int = 0  # (query, bank row) pairs scored again in fp32 by the certified search
    retried: int = 0  # queries the certified search tried again with a lower threshold


NORM_EPS = 1e-12  # F.normalize's: a zero row stays zero
BLOCK = 16  # bank rows per block of the block-max candidate selection
GROUP = 4  # blocks per group: the k-th largest group maximum starts each query's threshold
FP32_PAD = 64  # the fp32 bank is padded to a multiple of this: every power-of-two block width up to it divides it
FP32_CHUNK_SCORES = 1 << 25  # fp32 scores per chunk (128 MiB): bounds the query chunk for large banks
PREPARE_ELEMENTS = 1 << 21  # bank entries centred and rounded at a time for the bf16 copy (8 MiB per fp32 temporary)
SCORE_BUDGET = 1 << 26  # bf16 scores held at once (128 MiB): bounds the query chunk for large banks


def exact_search(
    bank: Tensor,
    queries: Tensor,
    k: int,
    window: float = 1.0,
    chunk_size: int = 1024,
    stats: SearchStats | None = None,
) -> tuple[Tensor, Tensor]:
    """The k largest cosine similarities of each query to the bank and their bank indices, best first.

    One search; to search one bank several times, prepare it once with `ExactIndex`.

    Args:
        bank: (num_bank, dim) features; normalised here.
        queries: (num_queries, dim) features; normalised here.
        k: neighbours per query (capped at the bank size).
        window: how far below a lower bound on its k-th best bf16 score each query's first threshold
            lies, in units of the bf16 rounding bound (>= 0): smaller re-ranks fewer rows and retries
            more queries with a lower threshold. 1 certified every query of 50,000 x 512 random and of
            Fashion-MNIST features at once (`benchmarks/bench_knn.py`).
        chunk_size: queries per bf16 product (fewer for banks so large that the scores would not fit
            the budget of 2**26 bf16 scores).
        stats: filled with the number of queries that needed the fp32 fallback.

    Returns:
        (similarity float32, indices int64), both (num_queries, k).
    """
    return ExactIndex(bank, chunk_size).search(queries, k, window, stats)


class ExactIndex:
    """A bank prepared once for exact searches: normalised fp32 rows, and on first use the centred
    bf16 copy, its rounding bounds and the score buffer (fresh multi-hundred-MiB tensors per search
    would spend more time in page faults than in arithmetic).

    Args:
        bank: (num_bank, dim) features, on any device; normalised here.
        chunk_size: queries per product.
        bf16: use the certified bf16 product on a CPU; False searches in fp32 throughout (the same
            answer; faster where bf16 products are not clearly faster than fp32 ones, as
            `ssl_coded.search.calibration` measures). Off the CPU the search is always fp32.
    """

    def __init__(self, bank: Tensor, chunk_size: int = 1024, bf16: bool = True) -> None:
        num_bank, dim = bank.shape
        if num_bank == 0:
            raise ValueError("the exact search needs a bank of at least one row, got none")
        # the rows live in a zero-padded buffer (bank32 is its prefix, no copy): the fp32 product then
        # writes whole blocks of scores, the padding columns set to -inf. Normalised in place: a
        # normalised copy first would double the index's peak memory.
        self.padded32 = torch.zeros(-(-num_bank // FP32_PAD) * FP32_PAD, dim, dtype=torch.float32, device=bank.device)
        self.bank32 = self.padded32[:num_bank]
        self.bank32.copy_(bank.detach())
        self.bank32.div_(self.bank32.norm(dim=1, keepdim=True).clamp_min(NORM_EPS))
        self.requested_chunk = chunk_size
        self.bf16 = bf16  # False: the fp32 product (where bf16 products are not faster)
        self.bank16: Tensor | None = None
        self.scores: Tensor | None = None  # the bf16 scores of a chunk, flat
        self.scores32: Tensor | None = None

    def __len__(self) -> int:
        return len(self.bank32)

    @torch.no_grad()
    def search(
        self, queries: Tensor, k: int, window: float = 1.0, stats: SearchStats | None = None
    ) -> tuple[Tensor, Tensor]:
        """As `exact_search`, on this bank."""
        bank32 = self.bank32
        if bank32.shape[1] != queries.shape[1]:
            raise ValueError(f"bank features have dimension {bank32.shape[1]} but queries {queries.shape[1]}")
        if k < 1 or window < 0:
            raise ValueError(f"the exact search needs k >= 1 and window >= 0, got k={k}, window={window}")
        stats = stats if stats is not None else SearchStats()
        k = min(k, len(bank32))
        if len(queries) == 0:
            return torch.empty(0, k, device=bank32.device), torch.empty(0, k, dtype=torch.long, device=bank32.device)
        similarities, indices = [], []
        with torch.autocast(device_type=bank32.device.type, enabled=False):
            start = 0
            while start < len(queries):
                certified = self._certifiable(k)
                chunk = queries[start : start + (self.chunk_size if certified else self.fp32_chunk_size)]
                start += len(chunk)
                query32 = F.normalize(chunk.float(), dim=1)
                if certified:
                    self._prepare()
                    fallbacks = stats.fallbacks
                    similarity, index = self._certified(query32, k, window, stats)
                    if len(chunk) >= 64 and 2 * (stats.fallbacks - fallbacks) > len(chunk):
                        self._give_up_bf16()
                elif bank32.device.type == "cpu":
                    similarity, index = self._fp32_blocked(query32, k)
                else:  # a GPU's top-k is cheap beside its product: no buffer games
                    similarity, index = _fp32_search(bank32, query32, k)
                stats.queries += len(chunk)
                similarities.append(similarity)
                indices.append(index)
        return torch.cat(similarities), torch.cat(indices)

    def _certifiable(self, k: int) -> bool:
        """Whether the certified bf16 search runs: on a CPU (off it the bound does not hold: cuBLAS may
        round partial sums to bf16, and fp32 products are fast anyway), with at least 2k groups of
        rows, whose k-th largest maximum starts the threshold (fewer: k near the bank size, where the
        re-rank would cost the fp32 product)."""
        return self.bf16 and self.bank32.device.type == "cpu" and 2 * k * BLOCK * GROUP <= len(self.padded32)

    def _give_up_bf16(self) -> None:
        """Most of a chunk needed the fp32 search: bf16 cannot separate this bank's scores (more
        near-duplicate rows than the candidate cap), so the index searches in fp32 from now on."""
        self.bf16 = False
        self.bank16 = self.scores = None

    @property
    def chunk_size(self) -> int:
        return max(1, min(self.requested_chunk, SCORE_BUDGET // len(self.padded32)))

    @property
    def fp32_chunk_size(self) -> int:
        return max(1, min(self.requested_chunk, FP32_CHUNK_SCORES // len(self.padded32)))

    def _fp32_blocked(self, query32: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """The fp32 product into the reused buffer, then the exact top-k by block maxima."""
        m, num_bank, padded = len(query32), len(self.bank32), len(self.padded32)
        if self.scores32 is None or len(self.scores32) < m:
            self.scores32 = torch.empty(self.fp32_chunk_size, padded, device=query32.device)
        scores = self.scores32[:m]
        torch.mm(query32, self.padded32.T, out=scores)
        scores[:, num_bank:] = float("-inf")  # padding rows never win
        block = fp32_block_width(padded, k)
        if block == 1:
            return scores.topk(k, dim=1)
        values, best_blocks = block_max_candidates(scores, k, block)
        similarity, position = values.topk(k, dim=1)
        return similarity, candidate_columns(position, best_blocks, padded // block)

    def _prepare(self) -> None:
        if self.bank16 is not None:
            return
        bank32 = self.bank32
        num_bank, dim = bank32.shape
        padded = len(self.padded32)  # a multiple of FP32_PAD: whole blocks, whole groups of blocks
        self.num_blocks = padded // BLOCK
        # The bf16 product runs on the bank minus its mean: a query's ranking is unchanged (q.x and
        # q.(x - mean) differ by q.mean for every row), but the scores and their rounding are smaller.
        self.center = bank32.mean(dim=0)
        self.bank16 = torch.zeros(padded, dim, dtype=torch.bfloat16, device=bank32.device)
        self.bank_norm = self.bank_rounding = 0.0
        # in pieces: a whole centred fp32 copy would cost as much memory as the bank itself
        rows = max(1, PREPARE_ELEMENTS // dim)
        for start in range(0, num_bank, rows):
            centered = bank32[start : start + rows] - self.center
            rounded = self.bank16[start : start + len(centered)]
            rounded.copy_(centered)
            self.bank_norm = max(self.bank_norm, float(centered.norm(dim=1).max()))
            self.bank_rounding = max(self.bank_rounding, float((centered - rounded.float()).norm(dim=1).max()))
        # fp32 rounding of the shift (x - mean, q.mean) and of the re-ranked dot products, worst case
        self.shift_slack = (2 + 2 * dim * (1 + float(self.center.norm()))) * FP32_UNIT_ROUNDOFF
        # flat, so that a chunk of any size views a contiguous (bank rows, queries) prefix
        self.scores = torch.empty(padded * self.chunk_size, dtype=torch.bfloat16, device=bank32.device)

    def _certified(self, query32: Tensor, k: int, window: float, stats: SearchStats) -> tuple[Tensor, Tensor]:
        """The bf16 scores of every bank row, the candidates above a per-query threshold re-ranked in
        fp32, the top k of those, and the certificate. A query it fails is tried once more with a
        threshold low enough to certify for sure: each of the k best bf16 rows is re-ranked, and its
        fp32 score lies at most one bound (plus the shift's slack) below its bf16 score, while a row
        below the threshold can rise at most as far above it; so a threshold two bounds and two slacks
        below `kth` settles the query, unless its candidates exceed the cap or the threshold is not
        positive. What still fails is searched in fp32."""
        m, num_bank, padded = len(query32), len(self.bank32), len(self.padded32)
        query16 = query32.bfloat16()
        assert self.bank16 is not None and self.scores is not None  # prepared by search()
        # (bank rows, queries): the transposed product runs faster than (queries, bank rows) here, and
        # a block of rows j, j + B, ..., j + 15B is then 16 contiguous slabs to take the maximum of
        scores = self.scores[: padded * m].view(padded, m)
        torch.mm(self.bank16, query16.T, out=scores)
        scores[num_bank:] = float("-inf")  # padding rows never win

        # Read as int16, positive bf16 numbers order as their bit patterns do, and negative ones below
        # every positive one: comparisons with a positive threshold are exact, and integer maxima run
        # about three times faster than bf16 ones. Queries whose threshold is not positive fall back.
        bits = scores.view(torch.int16)
        block_max = bits.view(BLOCK, self.num_blocks, m).amax(dim=0)
        group_max = block_max.view(GROUP, self.num_blocks // GROUP, m).amax(dim=0)
        # each group's maximum is a score of its own: at least k scores reach the k-th largest of them,
        # so where `kth` is positive (the int16 order holds there) the k-th best bf16 score is at least it
        kth = group_max.T.topk(k, dim=1, sorted=False).values.amin(dim=1).view(torch.bfloat16).float()
        # |fp32 - bf16| of a centred score: |q.x' - q16.x'16| <= |q - q16| |x'| + |q16| |x' - x'16|, plus
        # fp32 accumulation, plus the rounding of the bf16 output (at most `output` of the score)
        query16_norm = query16.float().norm(dim=1)
        rounding = (query32 - query16.float()).norm(dim=1) * self.bank_norm + query16_norm * self.bank_rounding
        accumulation = 2 * query32.shape[1] * FP32_UNIT_ROUNDOFF * query16_norm * (self.bank_norm + self.bank_rounding)
        error = rounding + accumulation
        shift = query32 @ self.center + self.shift_slack  # adds q.mean back (and a few ulps for the shift)

        chunk = _Chunk(query32, bits, block_max, kth, error, shift)
        similarity, index, certain = self._attempt(chunk, k, window, 0.0, torch.ones_like(kth, dtype=torch.bool), stats)
        if not bool(certain.all()):
            stats.retried += int((~certain).sum())
            # two bounds and two slacks below kth are enough to settle a query: no lower, as fewer rows
            # then reach the threshold (and the cap)
            found, found_index, settled = self._attempt(
                chunk, k, max(window, 2.0), 2 * self.shift_slack, ~certain, stats
            )
            similarity[settled], index[settled] = found[settled], found_index[settled]
            certain |= settled
        uncertain = (~certain).nonzero().squeeze(1)
        if len(uncertain):
            similarity[uncertain], index[uncertain] = _fp32_search(self.bank32, query32[uncertain], k)
        stats.fallbacks += len(uncertain)
        return similarity, index

    def _attempt(
        self, chunk: _Chunk, k: int, window: float, slack: float, pending: Tensor, stats: SearchStats
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The top k of each pending query among the rows whose bf16 score reaches kth - window *
        (its error bound) - slack, and whether the certificate settles it."""
        output = BF16_UNIT_ROUNDOFF / (1 - BF16_UNIT_ROUNDOFF)
        threshold = chunk.kth - window * (chunk.error + chunk.kth.abs() * output) - slack
        usable = pending & (threshold > 0)
        # rounded down to bf16 (the top 16 bits of a positive fp32): every score >= it is kept
        threshold16 = torch.where(usable, threshold, 1.0).view(torch.int32).bitwise_right_shift(16).to(torch.int16)
        threshold16[~usable] = torch.iinfo(torch.int16).max  # selects nothing
        rows, columns = self._candidates(chunk.bits, chunk.block_max, threshold16, k)
        values = self._rescore(chunk.query32, rows, columns)
        counts = torch.bincount(columns, minlength=len(pending))
        similarity, index = _top_k_per_query(values, rows, columns, counts, k)
        # every row not re-ranked has a bf16 score below the threshold, and so an fp32 score below this
        below = threshold16.view(torch.bfloat16).float()
        outside_bound = below + below.abs() * output + chunk.error + chunk.shift
        stats.reranked += len(values)
        return similarity, index, usable & (counts >= k) & (similarity[:, -1] > outside_bound)

    def _candidates(self, bits: Tensor, block_max: Tensor, threshold16: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """(bank row, query) of every score >= its query's threshold, sorted by bank row.

        The blocks whose maximum reaches the threshold first, then the 16 scores of each such block:
        a few percent of the scores are read twice, the rest once (by the block maxima). A query with
        more candidates than `candidate_cap(k)` (near-duplicate rows) is dropped and falls back."""
        m, num_blocks = bits.shape[1], self.num_blocks
        pairs = (block_max >= threshold16).view(-1).nonzero().squeeze(1)  # block * m + query
        pair_query = pairs % m
        crowded = _crowded(pair_query, m, candidate_cap(k))
        if crowded is not None:
            pairs, pair_query = pairs[~crowded], pair_query[~crowded]
        scores = bits.view(BLOCK, num_blocks * m).gather(1, pairs.expand(BLOCK, -1))
        hit = scores >= threshold16.index_select(0, pair_query)
        if int(hit.count_nonzero()) > candidate_cap(k) * m:  # crowded blocks: drop their queries first
            per_query = torch.bincount(pair_query, weights=hit.sum(dim=0, dtype=torch.float32), minlength=m)
            hit &= (per_query <= candidate_cap(k)).index_select(0, pair_query)
        hits = hit.view(-1).nonzero().squeeze(1)  # slab * pairs + pair
        slab = hits.div(len(pairs), rounding_mode="floor")
        pair = hits - slab * len(pairs)
        # index_select: on one-dimensional tensors about three times faster than indexing with [ ]
        rows = slab * num_blocks + pairs.index_select(0, pair) // m  # ascending
        columns = pair_query.index_select(0, pair)
        crowded = _crowded(columns, m, candidate_cap(k))
        return (rows, columns) if crowded is None else (rows[~crowded], columns[~crowded])

    def _rescore(self, query32: Tensor, rows: Tensor, columns: Tensor) -> Tensor:
        """fp32 similarities of the (bank row, query) pairs, given sorted by bank row.

        A sampled product (`torch.sparse.sampled_addmm`) over a CSR pattern of bank rows: each bank row
        is read once per chunk and dotted with the queries that chose it (which stay in cache), the
        same fp32 dot products as gathering each query's rows, at about half the memory traffic."""
        padded, m = len(self.padded32), len(query32)
        crow = torch.zeros(padded + 1, dtype=torch.long, device=rows.device)
        torch.cumsum(torch.bincount(rows, minlength=padded), dim=0, out=crow[1:])
        with warnings.catch_warnings():  # "sparse CSR support is in beta": the op is stable here
            warnings.simplefilter("ignore", UserWarning)
            pattern = torch.sparse_csr_tensor(
                crow, columns, query32.new_zeros(len(rows)), size=(padded, m), check_invariants=False
            )
            product = torch.sparse.sampled_addmm(pattern, self.padded32, query32.T, beta=0.0)
        values: Tensor = product.values()
        return values


def block_max_candidates(scores: Tensor, c: int, block: int) -> tuple[Tensor, Tensor]:
    """The scores of the c blocks with the largest maxima in each row (a superset of each row's
    top-c), and those blocks; `candidate_columns` maps positions among the scores to columns.

    Block j holds the columns j, j + B, j + 2B, ... (B = number of blocks), so the block maxima are
    an elementwise max over `block` contiguous slices. The top-c entries of a row lie in the c blocks
    with the largest maxima (each block whose maximum beats the c-th best entry holds one of the c
    best), so the row's top-c runs on c x block scores, not on the whole row.

    Args:
        scores: (m, n) scores, n a multiple of `block`.
        c: entries wanted per row.
        block: columns per block.

    Returns:
        (values (m, w * block), best blocks (m, w)), w = min(c, n // block).

    Example:
        >>> values, blocks = block_max_candidates(scores, 200, 16)
        >>> top, position = values.topk(200, dim=1)  # equals scores.topk(200, dim=1) up to ties
        >>> columns = candidate_columns(position, blocks, scores.shape[1] // 16)
    """
    m, num_blocks = len(scores), scores.shape[1] // block
    blocks = scores.view(m, block, num_blocks)
    best_blocks = blocks.amax(dim=1).topk(min(c, num_blocks), dim=1, sorted=False).indices
    values = blocks.gather(2, best_blocks[:, None, :].expand(-1, block, -1)).reshape(m, -1)
    return values, best_blocks


def candidate_columns(position: Tensor, best_blocks: Tensor, num_blocks: int) -> Tensor:
    """Columns of the scores at `position` in the values of `block_max_candidates`."""
    width = best_blocks.shape[1]
    return (position // width) * num_blocks + best_blocks.gather(1, position % width)


def fp32_block_width(num_columns: int, k: int) -> int:
    """Columns per block for an exact top-k by block maxima; 1 means a plain top-k is cheaper.

    The selection reads k x width candidates after ranking num_columns / width block maxima; the
    two balance near width = sqrt(num_columns / k). Widths are powers of two dividing FP32_PAD.

    Example:
        >>> fp32_block_width(50_048, 200)
        16
    """
    width = 1
    while width < FP32_PAD and (2 * width) ** 2 * k <= num_columns * 2:
        width *= 2
    # below a width of 4 the pruning saves less than its own passes over the scores
    return width if width >= 4 and k * width * 2 <= num_columns else 1


def candidate_cap(k: int) -> int:
    """Most fp32 re-ranks per query (random features need about 1.6 k): a query above it, near-duplicate
    rows that bf16 cannot order, is searched in fp32 instead. The selection holds at most this many
    candidates per query of a chunk on average (a few per query once more)."""
    return 2 * k + 512


def _crowded(queries: Tensor, num_queries: int, cap: int) -> Tensor | None:
    """Which items belong to a query holding more than `cap` of them; None where none does."""
    crowded = torch.bincount(queries, minlength=num_queries) > cap
    return crowded[queries] if bool(crowded.any()) else None


def _top_k_per_query(values: Tensor, rows: Tensor, queries: Tensor, counts: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k largest values of each query (best first) and their rows, from pairs in any order; rows of
    a query with fewer than k pairs are filler (its certificate fails on `counts`).

    One sort of (query, value) keys: a query's pairs then lie together, largest value first."""
    m = len(counts)
    if len(values) == 0:
        return values.new_zeros(m, k), rows.new_zeros(m, k)
    bits = (-values).view(torch.int32)
    descending = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long() + 2**31  # ascending in -value, in [0, 2**32)
    order = ((queries << 32) | descending).argsort()
    start = counts.cumsum(0) - counts
    positions = (start[:, None] + torch.arange(k, device=values.device)).clamp_max(len(values) - 1)
    chosen = order.index_select(0, positions.view(-1))
    return values.index_select(0, chosen).view(m, k), rows.index_select(0, chosen).view(m, k)


def _fp32_search(bank32: Tensor, query32: Tensor, k: int) -> tuple[Tensor, Tensor]:
    return (query32 @ bank32.T).topk(k, dim=1)
