"""Exact top-k inner-product search that does its heavy product in bf16 and still returns the fp32 answer.

On CPUs with native bf16 (AVX512-BF16, AMX) a bf16 matrix product can run much faster than the fp32
one (`benchmarks/bench_knn.py` measures both), which is the floor of every exact fp32 search (FAISS
IndexFlatIP, lightly's `knn_predict`). The search takes the `num_candidates` best bank rows by the bf16 product,
recomputes their similarities in fp32 and keeps the k best. A per-query certificate proves that no
row outside the candidates can beat the k-th: the bf16 score of any row is within `delta` of its
fp32 score, with `delta` bounded from the measured rounding of the query and the bank, the rounding
of the bf16 output and fp32 accumulation. Queries whose certificate fails are searched again in
fp32, so every answer equals the fp32 brute-force search (up to fp32 rounding of the re-rank).

Where bf16 products are not faster (no native bf16; `ssl_coded.search.calibration` measures it once per
machine), the search is the fp32 product itself, made cheaper than a plain product + top-k in two
ways: the scores go into one buffer reused for every chunk (a fresh chunk-sized tensor per product
costs page faults comparable to a good share of the product), and the top-k of each row runs on
the few blocks of columns whose maxima are the row's largest, not on the whole bank (the same
block-max selection as the bf16 candidates). The answer is the plain fp32 product's top-k.

Example:
    >>> similarity, neighbours = exact_search(bank, queries, k=200)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

BF16_UNIT_ROUNDOFF = 2.0**-8
FP32_UNIT_ROUNDOFF = 2.0**-24


@dataclass
class SearchStats:
    """How many queries the bf16 certificate settled, and how many fell back to an fp32 search."""

    queries: int = 0
    fallbacks: int = 0


NORM_EPS = 1e-12  # F.normalize's: a zero row stays zero
BLOCK = 16  # columns per block of the block-max candidate selection
FP32_PAD = 64  # the fp32 bank is padded to a multiple of this: every power-of-two block width up to it divides it
FP32_CHUNK_SCORES = 1 << 25  # fp32 scores per chunk (128 MiB): bounds the query chunk for large banks
PREPARE_ELEMENTS = 1 << 21  # bank entries centred and rounded at a time for the bf16 copy (8 MiB per fp32 temporary)
SCORE_BUDGET = 1 << 26  # bf16 scores held at once (128 MiB): bounds the query chunk for large banks


def exact_search(
    bank: Tensor,
    queries: Tensor,
    k: int,
    num_candidates: int | None = None,
    chunk_size: int = 512,
    stats: SearchStats | None = None,
) -> tuple[Tensor, Tensor]:
    """The k largest cosine similarities of each query to the bank and their bank indices, best first.

    One search; to search one bank several times, prepare it once with `ExactIndex`.

    Args:
        bank: (num_bank, dim) features; normalised here.
        queries: (num_queries, dim) features; normalised here.
        k: neighbours per query (capped at the bank size).
        num_candidates: rows re-ranked in fp32 per query; default k + max(k // 2, 64).
        chunk_size: queries per bf16 product (fewer for banks so large that the scores would not fit
            the budget of 2**26 bf16 scores).
        stats: filled with the number of queries that needed the fp32 fallback.

    Returns:
        (similarity float32, indices int64), both (num_queries, k).
    """
    return ExactIndex(bank, chunk_size).search(queries, k, num_candidates, stats)


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

    def __init__(self, bank: Tensor, chunk_size: int = 512, bf16: bool = True) -> None:
        num_bank, dim = bank.shape
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
        self.scores32: Tensor | None = None

    def __len__(self) -> int:
        return len(self.bank32)

    @torch.no_grad()
    def search(
        self, queries: Tensor, k: int, num_candidates: int | None = None, stats: SearchStats | None = None
    ) -> tuple[Tensor, Tensor]:
        """As `exact_search`, on this bank."""
        bank32 = self.bank32
        if bank32.shape[1] != queries.shape[1]:
            raise ValueError(f"bank features have dimension {bank32.shape[1]} but queries {queries.shape[1]}")
        stats = stats if stats is not None else SearchStats()
        k = min(k, len(bank32))
        num_candidates = min(max(k, num_candidates or k + max(k // 2, 64)), len(bank32))
        # k near the bank size: re-ranking would cost the fp32 product. Off the CPU the bound does not
        # hold (cuBLAS may round partial sums to bf16) and fp32 products are fast anyway.
        if len(queries) == 0:
            return torch.empty(0, k, device=bank32.device), torch.empty(0, k, dtype=torch.long, device=bank32.device)
        certified = self.bf16 and 8 * num_candidates < len(bank32) and bank32.device.type == "cpu"
        similarities, indices = [], []
        with torch.autocast(device_type=bank32.device.type, enabled=False):
            if certified:
                self._prepare()
            chunk_size = self.chunk_size if certified else self.fp32_chunk_size
            for chunk in queries.split(chunk_size):
                query32 = F.normalize(chunk.float(), dim=1)
                if certified:
                    similarity, index = self._certified(query32, k, num_candidates, stats)
                elif bank32.device.type == "cpu":
                    similarity, index = self._fp32_blocked(query32, k)
                else:  # a GPU's top-k is cheap beside its product: no buffer games
                    similarity, index = _fp32_search(bank32, query32, k)
                stats.queries += len(chunk)
                similarities.append(similarity)
                indices.append(index)
        return torch.cat(similarities), torch.cat(indices)

    @property
    def chunk_size(self) -> int:
        padded = -(-len(self.bank32) // BLOCK) * BLOCK
        return max(1, min(self.requested_chunk, SCORE_BUDGET // padded))

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
        self.num_blocks = -(-num_bank // BLOCK)
        padded = self.num_blocks * BLOCK
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
        self.scores = torch.empty(self.chunk_size, padded, dtype=torch.bfloat16, device=bank32.device)

    def _certified(self, query32: Tensor, k: int, num_candidates: int, stats: SearchStats) -> tuple[Tensor, Tensor]:
        m, num_bank = len(query32), len(self.bank32)
        query16 = query32.bfloat16()
        scores = self.scores[:m]
        assert self.bank16 is not None  # prepared by search()
        torch.mm(query16, self.bank16.T, out=scores)
        scores[:, num_bank:] = float("-inf")  # padding rows never win
        approximate, candidates = self._top_candidates(scores, num_candidates)
        rescored, candidates = self._rescore(query32, candidates)
        similarity, order = rescored.topk(k, dim=1)
        index = candidates.gather(1, order)

        # Any row outside the candidates has a bf16 score <= the worst candidate's; bound its fp32 score:
        # |q.x' - q16.x'16| <= |q - q16| |x'| + |q16| |x' - x'16|, plus fp32 accumulation and the
        # rounding of the bf16 output; then add back q.mean (and a few ulps for the shift itself).
        query16_norm = query16.float().norm(dim=1)
        rounding = (query32 - query16.float()).norm(dim=1) * self.bank_norm + query16_norm * self.bank_rounding
        accumulation = 2 * query32.shape[1] * FP32_UNIT_ROUNDOFF * query16_norm * (self.bank_norm + self.bank_rounding)
        worst = approximate.amin(dim=1).float()
        output = worst.abs() * BF16_UNIT_ROUNDOFF / (1 - BF16_UNIT_ROUNDOFF)
        outside_bound = worst + output + rounding + accumulation + query32 @ self.center + self.shift_slack
        uncertain = (similarity[:, -1] <= outside_bound).nonzero().squeeze(1)
        if len(uncertain):
            similarity[uncertain], index[uncertain] = _fp32_search(self.bank32, query32[uncertain], k)
        stats.fallbacks += len(uncertain)
        return similarity, index

    def _rescore(self, query32: Tensor, candidates: Tensor) -> tuple[Tensor, Tensor]:
        """fp32 similarities of each query to its candidates, and the candidates in the order of the
        similarities (sorted by bank row).

        A sampled product (`torch.sparse.sampled_addmm`) at the candidates' positions: it computes the
        same fp32 dot products as gathering each query's rows and multiplying, without writing the
        gathered rows out (measured 13 % faster on the whole search, `benchmarks/bench_knn.py`)."""
        columns = candidates.sort(dim=1).values
        m, c = columns.shape
        rows = torch.arange(0, m * c + 1, c, device=columns.device)
        with warnings.catch_warnings():  # "sparse CSR support is in beta": the op is stable here
            warnings.simplefilter("ignore", UserWarning)
            pattern = torch.sparse_csr_tensor(
                rows, columns.reshape(-1), query32.new_zeros(m * c), size=(m, len(self.bank32)), check_invariants=False
            )
            product = torch.sparse.sampled_addmm(pattern, query32, self.bank32.T, beta=0.0)
        return product.values().view(m, c), columns

    def _top_candidates(self, scores: Tensor, c: int) -> tuple[Tensor, Tensor]:
        """The c best bf16 scores per row (unordered) and their columns, from the best blocks."""
        values, best_blocks = block_max_candidates(scores, c, BLOCK)
        approximate, position = values.topk(c, dim=1, sorted=False)
        return approximate, candidate_columns(position, best_blocks, self.num_blocks)


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


def _fp32_search(bank32: Tensor, query32: Tensor, k: int) -> tuple[Tensor, Tensor]:
    return (query32 @ bank32.T).topk(k, dim=1)
