"""The noise floor ``auto`` puts under a distance's threshold (see
:mod:`modelmonitor.core.stats.drift`, "The ``auto`` rule"): the value a distance exceeds
in about 1% of windows of a given size without any shift, so small windows judged by a
distance do not raise false alarms.
"""

from __future__ import annotations

import math

#: ``auto`` raises a distance's threshold to the level its no-shift noise reaches in
#: 1% of windows of the current size (see :func:`noise_floor`).
AUTO_NOISE_QUANTILE = 0.99
AUTO_WASSERSTEIN_NOISE = 3.5


def noise_floor(method: str, n_eff: float, n_bins: int) -> float:
    """The value a distance exceeds in ~1% of windows without any shift (see docstring).

    * ``jensenshannon`` over B bins: JS distance (base 2) is about
      ``sqrt(chi2_{B-1} / (8 ln 2 n_eff))`` under no shift; its 99th percentile.
    * ``wasserstein`` (normed): ``3.5 / sqrt(n_eff)``, the largest 99th percentile of
      ``W sqrt(n_eff)`` measured on normal, lognormal, exponential and t(3) data
      (docs/statistics.md).
    * other methods: 0 (no floor).
    """
    if n_eff <= 0:
        return 0.0  # nothing to compare: the feature is reported as insufficient data
    if method == "wasserstein":
        return AUTO_WASSERSTEIN_NOISE / math.sqrt(n_eff)
    if method == "jensenshannon":
        from scipy import special  # only runs that need the exact floor pay for the import

        df = max(n_bins - 1, 1)
        q = float(2.0 * special.gammaincinv(df / 2.0, AUTO_NOISE_QUANTILE))  # = chi2.ppf
        return math.sqrt(q / (8.0 * math.log(2.0) * n_eff))
    return 0.0


def noise_floor_bound(method: str, n_eff: float, n_bins: int) -> float:
    """An upper bound of :func:`noise_floor` from elementary functions.

    For ``jensenshannon`` the chi-squared quantile is bounded by Laurent and Massart's
    inequality, ``P(X >= k + 2 sqrt(k x) + 2 x) <= exp(-x)`` with ``x = -ln(1 - 0.99)``:
    when the bound is below the default threshold the floor changes nothing, and the
    exact quantile (scipy.special, ~0.1-0.2 s to import) is never needed.
    """
    if method != "jensenshannon" or n_eff <= 0:
        return noise_floor(method, n_eff, n_bins)
    k = max(n_bins - 1, 1)
    x = -math.log(1.0 - AUTO_NOISE_QUANTILE)
    q = k + 2.0 * math.sqrt(k * x) + 2.0 * x
    return math.sqrt(q / (8.0 * math.log(2.0) * n_eff))
