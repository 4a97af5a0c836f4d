"""How surprising it is that k current values fall outside the reference's range.

A current window drawn from the reference's own (continuous) distribution still puts
values outside the reference's [min, max]: each one with probability 2 / (n + 1), so a
few per window are normal when the reference is small. A fixed share (say 1%) flags
that noise: 2 of 170 values is 1.2%. Whether k out-of-range values are more than chance
is a rank question with an exact answer that needs no model of the data: merge the n
reference and m current values; under "same distribution" every order of the merged
sample is equally likely, and K counts the current values before the first and after
the last reference value. Counting the orders gives, with N = n + m,

    P(K = j)  = (j + 1) C(N - j - 2, n - 2) / C(N, n)
    P(K >= k) = [(k + 1) C(N - k - 1, n - 1) + C(N - k - 1, n)] / C(N, n)

(the tail by summing the first with the hockey-stick identity). Ties (discrete data)
only make values outside the range rarer, so the p-value is conservative there.
"""

from __future__ import annotations

import math


def _log_binom(a: int, b: int) -> float:
    if b < 0 or b > a:
        return -math.inf
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


def out_of_range_pvalue(k: int, n_reference: int, n_current: int) -> float:
    """P(K >= k): at least ``k`` of ``n_current`` values outside the range of
    ``n_reference`` values when both samples come from one continuous distribution."""
    if k <= 0:
        return 1.0
    n, m = n_reference, n_current
    if n <= 0 or k > m:
        return 1.0 if n <= 0 else 0.0
    total = n + m
    log_norm = _log_binom(total, n)
    first = math.log(k + 1) + _log_binom(total - k - 1, n - 1) - log_norm
    second = _log_binom(total - k - 1, n) - log_norm
    return min(1.0, math.exp(first) + math.exp(second))


def expected_out_of_range(n_reference: int, n_current: int) -> float:
    """E[K] = 2 m / (n + 1): the out-of-range count a same-distribution window has."""
    return 2.0 * n_current / (n_reference + 1) if n_reference > 0 else float(n_current)
