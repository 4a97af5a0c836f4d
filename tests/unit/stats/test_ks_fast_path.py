"""The KS fast path on a sorted reference equals scipy's ks_2samp (scipy 1.17, method
'auto', which is asymptotic above 10,000 values per sample), statistic and p-value."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from modelmonitor.core.stats.column_profile import NumericalProfile
from modelmonitor.core.stats.numerical import ks, ks_statistic_sorted


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "decimals", "shift"),
    [
        (200_000, 20_000, None, 0.0),
        (200_000, 20_000, None, 0.02),
        (30_000, 400, 1, 0.0),  # heavy ties
        (15_000, 15_000, 0, 0.3),  # very heavy ties
        (12_000, 3, None, 1.0),
        (50, 20_000, None, -0.5),
    ],
)
def test_fast_path_equals_scipy(n_ref: int, n_cur: int, decimals: int | None, shift: float) -> None:
    rng = np.random.default_rng(n_ref + n_cur)
    a = rng.normal(size=n_ref)
    b = rng.normal(shift, 1.0, size=n_cur)
    if decimals is not None:
        a, b = np.round(a, decimals), np.round(b, decimals)
    profile = NumericalProfile.from_values("x", a, exact_limit=None)
    ours = ks(profile, b)
    theirs = sps.ks_2samp(a, b)
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.pvalue == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


def test_statistic_of_identical_and_disjoint_samples() -> None:
    x = np.sort(np.arange(100.0))
    assert ks_statistic_sorted(x, x) == 0.0
    assert ks_statistic_sorted(x, x + 1000) == 1.0
    assert ks_statistic_sorted(x + 1000, x) == 1.0
