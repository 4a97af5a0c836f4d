"""Drift methods when the current window is itself a sketched profile.

A window profile (:mod:`modelmonitor.core.stats.partitions`) keeps its exact sorted
sample up to ``exact_limit`` values; every method then runs on that sample exactly as on
an in-memory window (:func:`modelmonitor.core.stats.drift.analyze` passes the sample). Past
the limit the window's finite values are a KLL sketch, and each numerical method is read
from the sketch here. Which results are exact and which approximate:

============== ===================================================================
method         on a sketched window
============== ===================================================================
ttest          exact: the window's count, mean and M2 are exact in any profile
ks             statistic within ``eps_cur`` (+ ``eps_ref`` when the reference is
               sketched) of the exact one: it is sup |F_ref - F_cur| over the
               reference's points and the window's quantile grid, each CDF value read
               from the sketch within its rank error. The p-value is the exact
               p-value of that statistic for the two sizes, so it is approximate
               through the statistic only (docs/statistics.md measures both)
psi, jensen-   approximate: the window's bin proportions are differences of two
shannon,       sketch CDF values, each within ``eps_cur``
hellinger, kl
wasserstein,   approximate: the window's quantile function is discretised to
energy         :data:`~modelmonitor.core.stats.column_profile.QUANTILE_GRID_SIZE`
               equal-mass points from the sketch (as a sketched reference's is)
anderson,      refused (ValueError): their statistics need every value
cramervonmises
============== ===================================================================

Categorical windows keep exact counts up to the category cap; chi2, fisher, ztest, psi
and jensen-shannon on them are exact (the counts are the data's sufficient statistics).
Beyond the cap the counts are frequent-items estimates. Both sides are then compared over
the labels the sketch knows to within 10% (a count at least ten times the sketch's
largest error, 0.085% of n), every other label pooled into one bucket on both sides:
psi and jensen-shannon on that coarser table are approximate; the tests (chi2, fisher,
ztest) are refused, because at the sizes that overflow the cap a 10% error in one count
alone is a significant chi-squared (measured in docs/statistics.md), and ``auto`` picks
jensen-shannon.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

from modelmonitor.core.dataset import FloatArray
from modelmonitor.core.stats import numerical
from modelmonitor.core.stats.column_profile import PSI_BINS, CategoricalProfile, NumericalProfile
from modelmonitor.core.stats.errors import DegenerateInputWarning
from modelmonitor.core.stats.ks_dist import ks_2samp_pvalue
from modelmonitor.core.stats.results import DistanceResult, MethodResult, TestResult

#: Methods whose statistic is read from a sketched window (the others are refused).
SKETCH_METHODS = (
    "ks",
    "ttest",
    "wasserstein",
    "energy",
    "psi",
    "jensenshannon",
    "hellinger",
    "kl",
)


def ks_statistic(ref: NumericalProfile, cur: NumericalProfile) -> float:
    """sup |F_ref - F_cur| over both supports, each CDF read from its profile.

    Both CDFs are step functions: the supremum is reached at a jump of one of them, on
    its right or its left limit; the jumps are the reference's points and the window's
    quantile grid (the sketch's own items would be finer, but the grid of 1,000
    equal-mass points already resolves the window's CDF to 0.1%, below its rank error).
    """
    ref_pts, _ = ref.support()
    cur_pts, _ = cur.support()
    pts = np.unique(np.concatenate([ref_pts, cur_pts]))
    left = np.nextafter(pts, -np.inf)
    grid = np.concatenate([pts, left])
    return float(np.max(np.abs(ref.cdf(grid) - cur.cdf(grid))))


def ks(ref: NumericalProfile, cur: NumericalProfile) -> TestResult:
    d = ks_statistic(ref, cur)
    _, p = ks_2samp_pvalue(d, ref.n, cur.n)
    return TestResult(d, p)


def ttest(ref: NumericalProfile, cur: NumericalProfile) -> TestResult:
    """Welch's t-test from both profiles' exact moments (as :func:`numerical.ttest`)."""
    se2_r, se2_c = ref.variance / ref.n, cur.variance / cur.n
    se2 = se2_r + se2_c
    diff = ref.mean - cur.mean
    if se2 <= 0.0:
        warnings.warn("ttest: both samples are constant", DegenerateInputWarning, 2)
        return TestResult(0.0 if diff == 0 else math.copysign(math.inf, diff), float(diff == 0))
    t = diff / math.sqrt(se2)
    share_r, share_c = se2_r / se2, se2_c / se2
    df = 1.0 / (share_r * share_r / (ref.n - 1) + share_c * share_c / (cur.n - 1))
    from scipy import special

    return TestResult(t, min(1.0, float(2.0 * special.stdtr(df, -abs(t)))))


def _grid(cur: NumericalProfile) -> FloatArray:
    pts, _ = cur.support()
    return pts


def wasserstein(ref: NumericalProfile, cur: NumericalProfile) -> DistanceResult:
    return numerical.wasserstein(ref, _grid(cur))


def energy(ref: NumericalProfile, cur: NumericalProfile) -> DistanceResult:
    return numerical.energy(ref, _grid(cur))


def _binned(
    ref: NumericalProfile, cur: NumericalProfile, n_bins: int
) -> tuple[FloatArray, FloatArray]:
    edges, p_ref = ref.bin_proportions(n_bins)
    cum = np.concatenate([[0.0], cur.cdf(edges), [1.0]])
    p_cur = np.clip(np.diff(cum), 0.0, None)
    total = p_cur.sum()
    return p_ref, p_cur / total if total > 0 else p_cur


def psi(ref: NumericalProfile, cur: NumericalProfile) -> DistanceResult:
    return DistanceResult(numerical.psi_from_proportions(*_binned(ref, cur, PSI_BINS)))


def jensenshannon(ref: NumericalProfile, cur: NumericalProfile) -> DistanceResult:
    return DistanceResult(numerical.js_from_proportions(*_binned(ref, cur, numerical.HIST_BINS)))


def hellinger(ref: NumericalProfile, cur: NumericalProfile) -> DistanceResult:
    return DistanceResult(
        numerical.hellinger_from_proportions(*_binned(ref, cur, numerical.HIST_BINS))
    )


def kl(ref: NumericalProfile, cur: NumericalProfile) -> DistanceResult:
    return DistanceResult(numerical.kl_from_proportions(*_binned(ref, cur, numerical.HIST_BINS)))


_FUNCS: dict[str, Callable[[NumericalProfile, NumericalProfile], MethodResult]] = {
    "ks": ks,
    "ttest": ttest,
    "wasserstein": wasserstein,
    "energy": energy,
    "psi": psi,
    "jensenshannon": jensenshannon,
    "hellinger": hellinger,
    "kl": kl,
}


def run(method: str, ref: NumericalProfile, cur: NumericalProfile) -> MethodResult:
    """``method`` between a reference profile and a sketched window profile."""
    func = _FUNCS.get(method)
    if func is None:
        raise ValueError(
            f"method {method!r} needs every value of the current window, but feature "
            f"{cur.name!r} of this partitioned window is summarised by a sketch ({cur.n} "
            f"values); use one of {', '.join(SKETCH_METHODS)}"
        )
    if method == "ks" and not ref.exact:
        numerical.require_exact(ref, method)
    return func(ref, cur)


def approximate(method: str, kind: str, current: object) -> bool:
    """Whether ``method`` on this current column reads a sketch (marked ``approximate``).

    A test on a sketched categorical column is refused here (ValueError), see above.
    """
    if isinstance(current, NumericalProfile):
        return method != "ttest"  # moments are exact in every profile
    if not isinstance(current, CategoricalProfile) or current.exact:
        return False
    if kind == "test":
        raise ValueError(
            f"method {method!r} tests exact counts, but feature {current.name!r} of this "
            "partitioned window has more categories than the cap and is summarised by a "
            "frequent-items sketch; use jensenshannon or psi"
        )
    return True
