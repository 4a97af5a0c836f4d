"""Drift methods for one numerical feature.

Every function takes the reference as a :class:`~modelmonitor.core.stats.profile.NumericalProfile`
(the precomputed, cached form a monitoring run uses) or as a plain array (profiled on the
spot, keeping the exact sample), and the current window as an array. Non-finite values
(NaN, +/-inf) are dropped before the computation; :func:`modelmonitor.core.stats.drift.analyze`
counts and reports them per feature.

Tests (p-value; need the exact reference sample): :func:`ks`, :func:`anderson`,
:func:`cramervonmises`, and :func:`ttest` (Welch; its moments are exact in any profile,
so it also runs on a summarised reference).

Distances (no p-value; run on exact samples and on sketches alike):

* :func:`wasserstein` - Wasserstein-1 distance divided by the reference's standard
  deviation (ddof=0), so it reads "how many reference standard deviations the mass
  moved" and one threshold fits every unit. A constant reference (std 0) is normed by
  ``max(|mean|, 1)`` instead, with a :class:`DegenerateInputWarning`.
* :func:`energy` - energy distance ``sqrt(2 * integral (F - G)^2 dx)`` (scipy's
  definition) divided by the square root of the reference's standard deviation, which
  equals the energy distance of the standardised samples (it scales with the square
  root of the unit); same fallback for a constant reference.
* :func:`psi` - population stability index over ``n_bins`` (default 10) bins cut at
  reference quantiles; open outer bins catch any current value; proportions below
  ``eps`` (1e-4) are raised to ``eps`` and renormalised, so empty bins never give inf.
* :func:`jensenshannon` - Jensen-Shannon distance (square root of the divergence, base
  2, so in [0, 1]) over ``n_bins`` (default 20) reference-quantile bins.
* :func:`hellinger` - Hellinger distance ``sqrt(1 - sum sqrt(p q))`` in [0, 1], same bins.
* :func:`kl` - Kullback-Leibler divergence ``KL(current || reference)`` in nats, same
  bins, smoothed like PSI.

With a sketched reference, bin proportions come from the sketch's CDF (each within the
sketch's rank error, ~0.013) and the reference's quantile function from a grid of
:data:`~modelmonitor.core.stats.profile.QUANTILE_GRID_SIZE` sketch quantiles.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import numpy.typing as npt

from modelmonitor.core.dataset import FloatArray
from modelmonitor.core.stats.column_profile import PSI_BINS, NumericalProfile
from modelmonitor.core.stats.errors import DegenerateInputWarning
from modelmonitor.core.stats.ks_dist import ks_2samp_pvalue, prefer_scipy
from modelmonitor.core.stats.results import DistanceResult, TestResult

HIST_BINS = 20
EPS = 1e-4

__all__ = [
    "anderson",
    "cramervonmises",
    "energy",
    "hellinger",
    "jensenshannon",
    "kl",
    "ks",
    "psi",
    "ttest",
    "wasserstein",
]


def _validate(
    reference: NumericalProfile | npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    method: str,
    needs_exact: bool = False,
    min_n: int = 1,
) -> tuple[NumericalProfile, FloatArray]:
    """Profile the reference if needed, drop non-finite current values, check sizes.

    Never modifies ``current``; returns a view of it when every value is finite.
    """
    if isinstance(reference, NumericalProfile):
        ref = reference
    else:
        ref = NumericalProfile.from_values("reference", reference, exact_limit=None)
    cur = np.asarray(current, dtype=np.float64).ravel()
    finite = np.isfinite(cur)
    if not finite.all():
        cur = cur[finite]
    if needs_exact:
        require_exact(ref, method)
    if ref.n < min_n or cur.shape[0] < min_n:
        raise ValueError(
            f"method {method!r} needs at least {min_n} finite value(s) in each sample; "
            f"got {ref.n} reference and {cur.shape[0]} current"
        )
    return ref, cur


def require_exact(ref: NumericalProfile, method: str) -> None:
    """ValueError when a p-value method meets a sketched reference."""
    if not ref.exact:
        raise ValueError(
            f"method {method!r} computes a p-value and needs the exact reference sample, "
            f"but feature {ref.name!r} is summarised by a sketch ({ref.n} values > the "
            "profile's exact_limit); use a distance method (wasserstein, psi, "
            "jensenshannon, hellinger, kl, energy) or ttest, or build the profile with a "
            "larger exact_limit"
        )


def _ref_values(ref: NumericalProfile) -> FloatArray:
    assert ref.values is not None
    return ref.values


# --- tests --------------------------------------------------------------------------------
def ks(reference: NumericalProfile | npt.ArrayLike, current: npt.ArrayLike) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test (two-sided; exact p-value for small samples).

    Equal to ``scipy.stats.ks_2samp`` (exact up to 10,000 values per sample, asymptotic
    above; see :mod:`modelmonitor.core.stats.ks_dist`). The statistic is computed from the
    profile's already sorted reference, costing O(m log n) for a window of m values
    instead of re-sorting the reference on every run.
    """
    ref, cur = _validate(reference, current, method="ks", needs_exact=True)
    values = _ref_values(ref)
    n1, n2 = values.shape[0], cur.shape[0]
    if prefer_scipy(n1, n2):
        from scipy import stats  # heavy: imported only when it is faster

        res = stats.ks_2samp(values, cur)
        return TestResult(float(res.statistic), float(res.pvalue))
    d, pvalue = ks_2samp_pvalue(ks_statistic_sorted(values, np.sort(cur)), n1, n2)
    return TestResult(d, pvalue)


def ks_statistic_sorted(reference_sorted: FloatArray, current_sorted: FloatArray) -> float:
    """sup |F_ref - F_cur| from two sorted samples, evaluated at the current's points only.

    F_cur - F_ref peaks where F_cur jumps (at a current value, right limits); F_ref -
    F_cur peaks just before one (left limits) or after the last current value, where
    it is 0. So every extremum is found with one lookup of the window into the
    reference: O(m log n), never touching the reference's n values one by one.
    """
    n_ref = reference_sorted.shape[0]
    n_cur = current_sorted.shape[0]
    right_ref = np.searchsorted(reference_sorted, current_sorted, side="right") / n_ref
    left_ref = np.searchsorted(reference_sorted, current_sorted, side="left") / n_ref
    right_cur = np.searchsorted(current_sorted, current_sorted, side="right") / n_cur
    left_cur = np.searchsorted(current_sorted, current_sorted, side="left") / n_cur
    d_plus = float(np.max(right_cur - right_ref))
    d_minus = float(np.max(left_ref - left_cur))
    return max(d_plus, d_minus, 0.0)


def anderson(reference: NumericalProfile | npt.ArrayLike, current: npt.ArrayLike) -> TestResult:
    """Anderson-Darling k-sample test (k=2, midrank variant).

    The p-value is interpolated from tabulated critical values and so lies in
    [0.001, 0.25]; a drift decision at alpha/k below 0.001 (Bonferroni over many
    features) can never fire - prefer ks or cramervonmises then.
    """
    ref, cur = _validate(reference, current, method="anderson", needs_exact=True)
    samples = [_ref_values(ref), cur]
    if np.unique(np.concatenate(samples)).size < 2:
        warnings.warn(
            "anderson: both samples hold one and the same value", DegenerateInputWarning, 2
        )
        return TestResult(0.0, 1.0)
    from scipy import stats  # heavy: only runs with this method pay

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            res = stats.anderson_ksamp(samples, variant="midrank")
        except TypeError:  # scipy < 1.17 has no ``variant``
            res = stats.anderson_ksamp(samples, midrank=True)
    return TestResult(float(res.statistic), float(res.pvalue))


def cramervonmises(
    reference: NumericalProfile | npt.ArrayLike, current: npt.ArrayLike
) -> TestResult:
    """Two-sample Cramér-von Mises test (exact p-value for small samples)."""
    ref, cur = _validate(reference, current, method="cramervonmises", needs_exact=True, min_n=2)
    from scipy import stats  # heavy: only runs with this method pay

    res = stats.cramervonmises_2samp(_ref_values(ref), cur)
    return TestResult(float(res.statistic), float(res.pvalue))


def ttest(reference: NumericalProfile | npt.ArrayLike, current: npt.ArrayLike) -> TestResult:
    """Welch's t-test for equal means, from the profile's exact moments.

    The statistic has the sign of ``mean(reference) - mean(current)``. When both samples
    have zero variance the test is degenerate: p = 1 if the means agree, else 0.
    """
    ref, cur = _validate(reference, current, method="ttest", min_n=2)
    m = cur.shape[0]
    mean_c = float(cur.mean())
    var_c = float(np.square(cur - mean_c).sum()) / (m - 1)
    var_r = ref.variance
    se2_r, se2_c = var_r / ref.n, var_c / m
    se2 = se2_r + se2_c
    diff = ref.mean - mean_c
    if se2 <= 0.0:
        warnings.warn("ttest: both samples are constant", DegenerateInputWarning, 2)
        return TestResult(0.0 if diff == 0 else math.copysign(math.inf, diff), float(diff == 0))
    t = diff / math.sqrt(se2)
    share_r, share_c = se2_r / se2, se2_c / se2  # scaled, so tiny variances cannot underflow
    df = 1.0 / (share_r * share_r / (ref.n - 1) + share_c * share_c / (m - 1))
    from scipy import special  # imported by the runs that test, not by every run

    p = float(2.0 * special.stdtr(df, -abs(t)))  # = scipy.stats.t.sf(|t|, df)
    return TestResult(t, min(1.0, p))


# --- CDF distances --------------------------------------------------------------------------
def _scale(ref: NumericalProfile, method: str) -> float:
    std = ref.std
    if std > 0 and math.isfinite(std):
        return std
    warnings.warn(
        f"{method}: the reference is constant (std 0); normed by max(|mean|, 1) instead",
        DegenerateInputWarning,
        3,
    )
    return max(abs(ref.mean), 1.0)


def _cdf_gaps(ref: NumericalProfile, cur_sorted: FloatArray) -> tuple[FloatArray, FloatArray]:
    """|F_ref - F_cur| on each interval between consecutive pooled points, and its width.

    The reference support has n equal-mass points (the exact sample, or the sketch's
    quantile grid). The smaller sorted sample is merged into the larger by insertion
    (O(n + m), no search per value of the larger sample). With r(p) reference points
    among the first p + 1 pooled points, ``F_ref - F_cur = (r (n + m) - n (p + 1)) / (n m)``
    exactly, in integers - no running float sum. Tied points give zero-width
    intervals, which add nothing to the integrals.
    """
    pts, _ = ref.support()
    n, m = pts.shape[0], cur_sorted.shape[0]
    total = n + m
    if n <= m:  # the common case: a small support into a large window
        k = np.searchsorted(cur_sorted, pts, side="right")
        ref_pos = k + np.arange(n)
        pooled = np.insert(cur_sorted, k, pts)
    else:
        k = np.searchsorted(pts, cur_sorted, side="right")
        is_cur = np.zeros(total, dtype=bool)
        is_cur[k + np.arange(m)] = True
        pooled = np.empty(total)
        pooled[is_cur] = cur_sorted
        pooled[~is_cur] = pts
        ref_pos = np.flatnonzero(~is_cur)
    # r(p) = number of reference positions <= p: constant between reference positions
    seg = np.diff(ref_pos, prepend=0, append=total - 1)
    seg[-1] += 1  # the last segment runs to the end of the pooled array
    # F_ref - F_cur at p = r / n - (p + 1 - r) / m = r (1/n + 1/m) - (p + 1) / m
    gap = np.repeat(np.arange(n + 1) * (1.0 / n + 1.0 / m), seg)[:-1]
    gap -= _ramp(total, m)
    np.abs(gap, out=gap)
    return gap, np.diff(pooled)


@functools.lru_cache(maxsize=2)
def _ramp(total: int, m: int) -> FloatArray:
    """(p + 1) / m for p = 0 .. total - 2; shared by the columns of one window."""
    ramp = np.arange(1, total, dtype=np.float64)
    ramp *= 1.0 / m
    ramp.flags.writeable = False
    return ramp


def wasserstein(
    reference: NumericalProfile | npt.ArrayLike, current: npt.ArrayLike
) -> DistanceResult:
    """Wasserstein-1 distance divided by the reference's standard deviation."""
    ref, cur = _validate(reference, current, method="wasserstein")
    gap, width = _cdf_gaps(ref, np.sort(cur))
    return DistanceResult(float(np.einsum("i,i->", gap, width)) / _scale(ref, "wasserstein"))


def energy(reference: NumericalProfile | npt.ArrayLike, current: npt.ArrayLike) -> DistanceResult:
    """Energy distance (scipy's definition) of the samples standardised by the reference std."""
    ref, cur = _validate(reference, current, method="energy")
    gap, width = _cdf_gaps(ref, np.sort(cur))
    energy2 = 2.0 * float(np.einsum("i,i,i->", gap, gap, width)) / _scale(ref, "energy")
    return DistanceResult(math.sqrt(energy2))


# --- binned distances -----------------------------------------------------------------------
def _binned(ref: NumericalProfile, cur: FloatArray, n_bins: int) -> tuple[FloatArray, FloatArray]:
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    edges, p_ref = ref.bin_proportions(n_bins)
    counts = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=edges.shape[0] + 1)
    return p_ref, counts / cur.shape[0]


def smooth(p: FloatArray, eps: float = EPS) -> FloatArray:
    """Raise proportions below ``eps`` to ``eps`` and renormalise to sum 1."""
    q = np.maximum(p, eps)
    return np.asarray(q / q.sum(), dtype=np.float64)


def psi_from_proportions(p_ref: FloatArray, p_cur: FloatArray, eps: float = EPS) -> float:
    """PSI = sum (cur - ref) * ln(cur / ref) over smoothed proportions."""
    r, c = smooth(p_ref, eps), smooth(p_cur, eps)
    return float(np.sum((c - r) * np.log(c / r)))


def js_from_proportions(p_ref: FloatArray, p_cur: FloatArray) -> float:
    """Jensen-Shannon distance, base 2 (in [0, 1]); zero proportions need no smoothing."""
    m = 0.5 * (p_ref + p_cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p_ref > 0, p_ref * np.log2(p_ref / m), 0.0)
        b = np.where(p_cur > 0, p_cur * np.log2(p_cur / m), 0.0)
    return math.sqrt(max(0.0, 0.5 * float(a.sum() + b.sum())))


def hellinger_from_proportions(p_ref: FloatArray, p_cur: FloatArray) -> float:
    """Hellinger distance sqrt(1 - sum sqrt(p q)) in [0, 1].

    Computed as sqrt(sum (sqrt p - sqrt q)^2 / 2), equal for proportions summing to 1 and
    free of cancellation (identical inputs give exactly 0).
    """
    diff = np.sqrt(p_ref) - np.sqrt(p_cur)
    return min(1.0, math.sqrt(0.5 * float(np.dot(diff, diff))))


def kl_from_proportions(p_ref: FloatArray, p_cur: FloatArray, eps: float = EPS) -> float:
    """KL(current || reference) in nats over smoothed proportions."""
    r, c = smooth(p_ref, eps), smooth(p_cur, eps)
    return float(np.sum(c * np.log(c / r)))


def psi(
    reference: NumericalProfile | npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    n_bins: int = PSI_BINS,
    eps: float = EPS,
) -> DistanceResult:
    """Population stability index over reference-quantile bins."""
    ref, cur = _validate(reference, current, method="psi")
    return DistanceResult(psi_from_proportions(*_binned(ref, cur, n_bins), eps))


def jensenshannon(
    reference: NumericalProfile | npt.ArrayLike, current: npt.ArrayLike, *, n_bins: int = HIST_BINS
) -> DistanceResult:
    """Jensen-Shannon distance (base 2) over reference-quantile bins."""
    ref, cur = _validate(reference, current, method="jensenshannon")
    return DistanceResult(js_from_proportions(*_binned(ref, cur, n_bins)))


def hellinger(
    reference: NumericalProfile | npt.ArrayLike, current: npt.ArrayLike, *, n_bins: int = HIST_BINS
) -> DistanceResult:
    """Hellinger distance over reference-quantile bins."""
    ref, cur = _validate(reference, current, method="hellinger")
    return DistanceResult(hellinger_from_proportions(*_binned(ref, cur, n_bins)))


def kl(
    reference: NumericalProfile | npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    n_bins: int = HIST_BINS,
    eps: float = EPS,
) -> DistanceResult:
    """KL(current || reference) over reference-quantile bins, smoothed."""
    ref, cur = _validate(reference, current, method="kl")
    return DistanceResult(kl_from_proportions(*_binned(ref, cur, n_bins), eps))
