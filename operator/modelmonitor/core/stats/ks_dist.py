"""The two-sample Kolmogorov-Smirnov p-value, without importing ``scipy.stats``.

``scipy.stats`` costs about half a second to import, more than a whole ``modelmonitor
check`` of a 50,000-row window, and most runs never need it. This module gives the
two-sided p-value of ``scipy.stats.ks_2samp`` (method ``auto``) from numpy alone:

* both samples <= 10,000 values (scipy's exact mode): the exact probability
  ``P(D >= d)`` under the null, counted over the lattice paths from (0, 0) to (m, n)
  (Hodges 1958). Equal sizes use the closed alternating sum scipy uses; unequal sizes a
  dynamic programme over anti-diagonals of the lattice restricted to the band the
  statistic allows, carried as probabilities in [0, 1] (no binomial overflow);
* larger samples: scipy's own asymptotic choice, ``kstwo.sf(d, round(m n / (m + n)))``.
  That distribution has no equivalent in ``scipy.special``, so ``scipy.stats`` is imported
  there, and only there: a run pays for it only when it tests against a large exact
  reference.

The unit tests hold every branch equal to ``scipy.stats.ks_2samp`` to 1e-10.
"""

from __future__ import annotations

import math

import numpy as np

#: Up to this many values in each sample the p-value is exact (scipy's MAX_AUTO_N).
KS_EXACT_MAX_N = 10_000
#: Above this many values in both samples together (of unequal sizes) callers holding the
#: samples should rather ask ``scipy.stats.ks_2samp``: the lattice walk here costs ~10 us
#: per value in numpy, so past a few thousand values scipy's compiled path counter wins
#: even after paying ~0.5 s once to import ``scipy.stats``.
KS_OWN_EXACT_MAX_TOTAL = 4_000


def prefer_scipy(n1: int, n2: int) -> bool:
    """Whether scipy's compiled exact computation is the faster way for these sizes."""
    return n1 != n2 and max(n1, n2) <= KS_EXACT_MAX_N and n1 + n2 > KS_OWN_EXACT_MAX_TOTAL


def ks_2samp_pvalue(d: float, n1: int, n2: int) -> tuple[float, float]:
    """(statistic, two-sided p-value) for the KS statistic ``d`` of samples of sizes
    ``n1``, ``n2``, as ``scipy.stats.ks_2samp`` reports them: in exact mode the statistic
    is rounded to the nearest attainable value h / lcm(n1, n2) first."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one value")
    if max(n1, n2) <= KS_EXACT_MAX_N:
        exact = _exact(d, n1, n2)
        if exact is not None:
            return exact
    return d, _asymptotic_pvalue(d, n1, n2)


def _asymptotic_pvalue(d: float, n1: int, n2: int) -> float:
    from scipy.stats import kstwo  # heavy: only runs that need it pay

    m, n = sorted((float(n1), float(n2)), reverse=True)
    return float(np.clip(kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))


def _exact(d: float, n1: int, n2: int) -> tuple[float, float] | None:
    """(rounded d, P(D >= d)) exactly; None when it cannot be computed (then asymptotic)."""
    g = math.gcd(n1, n2)
    lcm = (n1 // g) * n2
    h = round(d * lcm)  # d on the lattice of attainable values, as scipy rounds it
    d = h / lcm
    if h == 0:
        return d, 1.0
    with np.errstate(all="ignore"):
        p = _outside_square(n1, h) if n1 == n2 else _outside_band(n1, n2, g, h)
    if math.isnan(p) or not 0.0 <= p <= 1.0:
        return None
    return d, p


def _outside_square(n: int, h: int) -> float:
    """P(D_{n,n} >= h/n) = 2 sum_k (-1)^(k+1) C(2n, n - k h) / C(2n, n), by Horner."""
    total = 0.0
    k = n // h
    while k >= 0:
        term = 1.0
        for j in range(h):
            term = (n - k * h - j) * term / (n + k * h + j + 1)
        total = term * (1.0 - total)
        k -= 1
    return 2.0 * total


def _outside_band(n1: int, n2: int, g: int, h: int) -> float:
    """P(some prefix of the merged sample has |n2 x - n1 y| >= h g).

    ``b[x]`` on anti-diagonal k = x + y is the probability that a uniformly random
    path from (0, 0) to (x, y) has left the band (1 outside it); inside the band it
    obeys ``b(x, y) = x/k b(x-1, y) + y/k b(x, y-1)``. Carrying the outside probability
    (not 1 - inside) keeps tiny p-values accurate. Only the band's cells are computed,
    in place in one array indexed by x + 1.
    """
    m, n = n1, n2  # x steps: the first sample's values, y steps: the second's
    hg = h * g
    total = m + n
    b = np.ones(m + 2)
    b[1] = 0.0  # b(0, 0): the empty path is inside
    xs = np.arange(-1, m + 1, dtype=np.float64)  # xs[i] = i - 1 = x
    plo, phi = 0, 0
    for k in range(1, total + 1):
        # |n x - m (k - x)| < hg  <=>  (m k - hg) / total < x < (m k + hg) / total
        lo = max((m * k - hg) // total + 1, k - n, 0)
        hi = min(-(-(m * k + hg) // total) - 1, m, k)
        if hi < lo:
            return 1.0
        x = xs[lo + 1 : hi + 2]
        inside = (x * b[lo : hi + 1] + (k - x) * b[lo + 1 : hi + 2]) / k
        b[plo + 1 : phi + 2] = 1.0
        b[lo + 1 : hi + 2] = inside
        plo, phi = lo, hi
    return float(b[m + 1])  # the last diagonal is the single cell (m, n)
