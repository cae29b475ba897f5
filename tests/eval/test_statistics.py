"""The one engine for seeds (`ssl_coded.eval.statistics`), against numpy and SciPy computed here."""

import math

import numpy as np
import pytest
from scipy.stats import ttest_rel
from ssl_coded.eval.statistics import format_difference, format_spread, paired_by_seed, spread


def test_spread_is_numpys_mean_and_sample_std():
    values = [0.81, 0.84, 0.86, 0.80]
    mean, std, count = spread(values)
    assert (mean, count) == (pytest.approx(np.mean(values)), 4) and std == pytest.approx(np.std(values, ddof=1))
    assert spread([0.5]) == (0.5, 0.0, 1)
    assert format_spread(*spread([0.5])) == "0.5000" and format_spread(1234.4, 10.2, 3, digits=0) == "1234 +- 10"


def test_pairs_only_the_seeds_both_have_as_scipys_paired_t_test():
    ours = {0: 0.85, 1: 0.88, 2: 0.84, 7: 0.99}  # seed 7: no baseline cell, not paired
    theirs = {2: 0.83, 0: 0.84, 1: 0.85, 5: 0.1}
    delta, std, p, pairs = paired_by_seed(ours, theirs)
    a, b = np.array([0.85, 0.88, 0.84]), np.array([0.84, 0.85, 0.83])
    assert pairs == 3 and delta == pytest.approx((a - b).mean()) and std == pytest.approx((a - b).std(ddof=1))
    assert p == pytest.approx(ttest_rel(a, b).pvalue)
    assert format_difference(delta, std, p, pairs) == f"+1.67 +- 1.15 (p {ttest_rel(a, b).pvalue:.2g})"
    assert paired_by_seed({0: 1.0}, {1: 1.0}) is None
    assert math.isnan(paired_by_seed({0: 0.5, 1: 0.6}, {0: 0.4, 1: 0.5})[2])  # equal differences: nothing to test
