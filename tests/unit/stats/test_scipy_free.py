"""The statistics on the ``check`` path give scipy.stats' numbers without importing it.

Expected values are scipy 1.17's (``scipy.stats``, imported here only): the KS p-value of
``ks_2samp`` (method 'auto': exact up to 10,000 values per sample), the chi-squared,
normal and t tails, and the chi-squared quantile of ``auto``'s noise floor.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from modelmonitor.core.stats.categorical import chi2, ztest
from modelmonitor.core.stats.column_profile import NumericalProfile
from modelmonitor.core.stats.drift import noise_floor
from modelmonitor.core.stats.ks_dist import ks_2samp_pvalue
from modelmonitor.core.stats.numerical import ks, ttest


@pytest.mark.parametrize(
    ("n1", "n2"),
    [(1, 1), (5, 7), (10, 10), (3, 300), (50, 1), (100, 37), (400, 170), (569, 569), (999, 1000)],
)
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.4, 2.0])
def test_exact_ks_pvalue_equals_scipy(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 * 7919 + n2)
    a = rng.normal(size=n1)
    b = rng.normal(shift, 1.0, size=n2)
    theirs = sps.ks_2samp(a, b)
    d, p = ks_2samp_pvalue(float(theirs.statistic), n1, n2)
    assert d == pytest.approx(theirs.statistic, abs=1e-15)
    # tight: relative 1e-10 down to the tiniest p-values (the outside probability is
    # carried directly, never as 1 - inside)
    assert p == pytest.approx(theirs.pvalue, rel=1e-10, abs=1e-300)


@pytest.mark.parametrize(("n1", "n2"), [(300, 200), (2000, 25), (1500, 1500)])
def test_ks_with_ties_equals_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(3)
    a = np.round(rng.normal(size=n1), 1)
    b = np.round(rng.normal(0.2, 1.0, size=n2), 1)
    profile = NumericalProfile.from_values("x", a, exact_limit=None)
    ours, theirs = ks(profile, b), sps.ks_2samp(a, b)
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-15)
    assert ours.pvalue == pytest.approx(theirs.pvalue, rel=1e-10, abs=1e-300)


def test_large_unequal_exact_samples_still_equal_scipy() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=6000), rng.normal(0.05, 1.0, size=3000)
    profile = NumericalProfile.from_values("x", a, exact_limit=None)
    ours, theirs = ks(profile, b), sps.ks_2samp(a, b)
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-15)
    assert ours.pvalue == pytest.approx(theirs.pvalue, rel=1e-10)


def test_chi2_and_ztest_tails_equal_scipy() -> None:
    rng = np.random.default_rng(5)
    ref = rng.choice(["a", "b", "c"], 500, p=[0.5, 0.3, 0.2]).tolist()
    cur = rng.choice(["a", "b", "c"], 200, p=[0.4, 0.3, 0.3]).tolist()
    res = chi2(ref, cur)
    assert res.pvalue == pytest.approx(float(sps.chi2.sf(res.statistic, 2)), rel=1e-12)
    res = ztest(["a", "b"] * 150, ["a"] * 120 + ["b"] * 80)
    assert res.pvalue == pytest.approx(2 * float(sps.norm.sf(abs(res.statistic))), rel=1e-12)


def test_ttest_tail_equals_scipy_welch() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=400), rng.normal(0.15, 1.3, size=90)
    ours = ttest(NumericalProfile.from_values("x", a, exact_limit=None), b)
    theirs = sps.ttest_ind(a, b, equal_var=False)
    assert ours.pvalue == pytest.approx(float(theirs.pvalue), rel=1e-9)


@pytest.mark.parametrize("n_bins", [2, 3, 20, 101])
def test_noise_floor_quantile_equals_scipy(n_bins: int) -> None:
    n_eff = 700.0
    expected = np.sqrt(sps.chi2.ppf(0.99, n_bins - 1) / (8 * np.log(2) * n_eff))
    assert noise_floor("jensenshannon", n_eff, n_bins) == pytest.approx(expected, rel=1e-12)


def test_statistics_modules_do_not_import_scipy_stats() -> None:
    code = (
        "import sys\n"
        "import modelmonitor.core.stats.drift, modelmonitor.core.stats.quality\n"
        "import modelmonitor.edge.offline\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("n_bins", [2, 3, 5, 20, 101, 1000])
@pytest.mark.parametrize("n_eff", [10.0, 700.0, 40_000.0])
def test_noise_floor_bound_is_an_upper_bound(n_bins: int, n_eff: float) -> None:
    from modelmonitor.core.stats.drift import noise_floor_bound

    exact = noise_floor("jensenshannon", n_eff, n_bins)
    bound = noise_floor_bound("jensenshannon", n_eff, n_bins)
    assert exact <= bound <= 1.5 * exact  # never below, and not loose enough to matter
    assert noise_floor_bound("wasserstein", n_eff, n_bins) == noise_floor(
        "wasserstein", n_eff, n_bins
    )


def test_large_auto_run_imports_no_scipy_at_all() -> None:
    """At sizes where auto picks distances (and the JS noise floor is below 0.1), a whole
    run with data quality needs neither scipy.stats nor scipy.special."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from modelmonitor.core.dataset import CategoricalColumn, Dataset\n"
        "from modelmonitor.core.stats.drift import analyze\n"
        "from modelmonitor.core.stats.quality import data_quality\n"
        "rng = np.random.default_rng(0)\n"
        "def ds(n):\n"
        "    cat = CategoricalColumn(rng.integers(0, 5, n).astype(np.int32), tuple('abcde'))\n"
        "    return Dataset({'x': rng.normal(size=n), 'c': cat})\n"
        "ref, cur = ds(20000), ds(5000)\n"
        "report = analyze(ref, cur)\n"
        "assert {f.method for f in report.features} == {'wasserstein', 'jensenshannon'}\n"
        "data_quality(cur, ref)\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
