"""The power of the exact Wilcoxon signed-rank test over a few seeds.

On few seeds the exact test has few possible p-values, so scaling the t-test's MDE by the
Wilcoxon's large-sample efficiency (3/pi) overstates its power (that scaling gave 64% instead
of 80% at 6 seeds). Here the MDE is found for normal per-seed differences with the test's own
rejection rule: W+ (the sum of the ranks of the positive differences) equals the number of
Walsh averages (x_i + x_j) / 2, i <= j, above 0, so a shift d rejects on the upper side once
d exceeds minus the k-th largest Walsh average, k being the smallest W+ that rejects. The MDE
is the POWER quantile of that critical shift over simulated standard-normal seeds (the lower
side's rejections, a shift of the wrong sign, are left out: the MDE errs large).
"""

from __future__ import annotations

import functools

import numpy as np

from ablate.report.stats import ALPHA, POWER

EXACT_MAX_SEEDS = 15  # beyond, the efficiency scaling is within 1% of this (measured at 10-25)
_DRAWS = 20_000
_SEED = 0


def null_counts(n: int) -> np.ndarray:
    """How many of the 2^n sign patterns give W+ = 0, 1, ..., n(n+1)/2."""
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=np.float64)
    counts[0] = 1.0
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank]  # the sum is new: no aliasing
    return counts


def upper_critical(n: int, alpha: float = ALPHA) -> int | None:
    """The smallest W+ at which the two-sided exact test has p < alpha; None if none does."""
    cdf = np.cumsum(null_counts(n)) / 2.0**n
    low = np.nonzero(2 * cdf < alpha)[0]  # W+ values at or below which the lower tail rejects
    if low.size == 0:
        return None
    return n * (n + 1) // 2 - int(low[-1])


@functools.cache
def mde_factor(n: int) -> float:
    """The MDE of the exact test on ``n`` seeds in units of the seed-to-seed sd; inf where no
    outcome reaches ALPHA."""
    needed = upper_critical(n)
    if needed is None:
        return float("inf")
    draws = np.random.default_rng(_SEED).standard_normal((_DRAWS, n))
    i, j = np.triu_indices(n)
    walsh = (draws[:, i] + draws[:, j]) / 2
    count = walsh.shape[1]
    kth_largest = np.partition(walsh, count - needed, axis=1)[:, count - needed]
    return float(np.quantile(-kth_largest, POWER))
