"""Numerical methods against scipy (same statistic and p-value) and hand-computed values."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon as scipy_js

from modelmonitor.core.stats import numerical as num
from modelmonitor.core.stats.column_profile import NumericalProfile
from modelmonitor.core.stats.errors import DegenerateInputWarning

RNG = np.random.default_rng(20261126)
SMALL_A = RNG.normal(0.0, 1.0, 40)
SMALL_B = RNG.normal(0.4, 1.3, 30)
MID_A = RNG.normal(0.0, 1.0, 800)
MID_B = RNG.standard_t(5, 600) + 0.1
TIES_A = RNG.integers(0, 6, 300).astype(float)
TIES_B = RNG.integers(0, 7, 200).astype(float)
PAIRS = [(SMALL_A, SMALL_B), (MID_A, MID_B), (TIES_A, TIES_B), (SMALL_A, MID_B)]


# --- tests with p-values: scipy 1.17.1 is the reference implementation ------------------
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_ks_matches_scipy(a: np.ndarray, b: np.ndarray) -> None:
    expected = sps.ks_2samp(a, b)  # source: scipy 1.17.1 ks_2samp
    got = num.ks(a, b)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-9)


def test_ks_hand_computed_exact_pvalue() -> None:
    # Disjoint samples of 3 and 3: D = 1, exact two-sided p = 2 / C(6, 3) = 0.1
    # (the two extreme orderings out of 20 equally likely ones under H0).
    got = num.ks([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert got.statistic == 1.0
    assert got.pvalue == pytest.approx(0.1, rel=1e-12)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_anderson_matches_scipy(a: np.ndarray, b: np.ndarray) -> None:
    expected = _scipy_anderson(a, b)  # source: scipy 1.17.1 anderson_ksamp, midrank
    got = num.anderson(a, b)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-12)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_cramervonmises_matches_scipy(a: np.ndarray, b: np.ndarray) -> None:
    expected = sps.cramervonmises_2samp(a, b)  # source: scipy 1.17.1
    got = num.cramervonmises(a, b)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-9)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_ttest_matches_scipy_welch(a: np.ndarray, b: np.ndarray) -> None:
    expected = sps.ttest_ind(a, b, equal_var=False)  # source: scipy 1.17.1, Welch
    got = num.ttest(a, b)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-9)


def test_ttest_from_sketched_profile_uses_exact_moments() -> None:
    big = RNG.normal(0.0, 1.0, 5000)
    prof = NumericalProfile.from_values("x", big, exact_limit=100)
    assert not prof.exact
    expected = sps.ttest_ind(big, MID_B, equal_var=False)
    got = num.ttest(prof, MID_B)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-9)


def test_ttest_constant_samples_are_degenerate() -> None:
    with pytest.warns(DegenerateInputWarning):
        assert num.ttest([1.0, 1.0, 1.0], [1.0, 1.0]).pvalue == 1.0
    with pytest.warns(DegenerateInputWarning):
        assert num.ttest([1.0, 1.0, 1.0], [2.0, 2.0]).pvalue == 0.0


def test_tests_refuse_a_sketched_reference() -> None:
    prof = NumericalProfile.from_values("amount", RNG.normal(size=3000), exact_limit=1000)
    for func in (num.ks, num.anderson, num.cramervonmises):
        with pytest.raises(ValueError, match="needs the exact reference sample"):
            func(prof, MID_B)


# --- CDF distances: scipy's unnormalised distance divided by the reference std -----------
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_wasserstein_matches_scipy_normed(a: np.ndarray, b: np.ndarray) -> None:
    expected = sps.wasserstein_distance(a, b) / np.std(a)  # source: scipy 1.17.1
    assert num.wasserstein(a, b).statistic == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_energy_matches_scipy_normed(a: np.ndarray, b: np.ndarray) -> None:
    expected = sps.energy_distance(a, b) / np.sqrt(np.std(a))  # source: scipy 1.17.1
    assert num.energy(a, b).statistic == pytest.approx(expected, rel=1e-10)


def test_wasserstein_hand_computed() -> None:
    # Reference {0, 2}: std 1. Current {1, 3}: every unit of mass moves by 1 -> W1 = 1.
    assert num.wasserstein([0.0, 2.0], [1.0, 3.0]).statistic == pytest.approx(1.0, rel=1e-12)


def test_wasserstein_on_sketch_matches_weighted_scipy() -> None:
    big = RNG.normal(size=20_000)
    prof = NumericalProfile.from_values("x", big, exact_limit=1000)
    pts, w = prof.support()
    expected = sps.wasserstein_distance(pts, MID_B, u_weights=w) / prof.std
    assert num.wasserstein(prof, MID_B).statistic == pytest.approx(expected, rel=1e-9)


def test_constant_reference_is_normed_by_its_magnitude() -> None:
    with pytest.warns(DegenerateInputWarning, match="constant"):
        got = num.wasserstein([4.0, 4.0, 4.0], [5.0, 5.0]).statistic
    assert got == pytest.approx(1.0 / 4.0)


# --- binned distances: hand-computed on reference 1..10 (median 5.5, two bins) -----------
# Reference 1..10 with n_bins=2 -> one edge at the reference median 5 (smallest value with
# CDF >= 0.5), bins (-inf, 5] and (5, inf) -> proportions (0.5, 0.5).
# Current (1, 2, 3, 7) -> proportions (0.75, 0.25). No proportion is 0, so smoothing is
# a no-op.
REF_1_10 = np.arange(1.0, 11.0)
CUR_3_1 = np.array([1.0, 2.0, 3.0, 7.0])


def test_psi_hand_computed() -> None:
    # PSI = (0.75-0.5) ln(0.75/0.5) + (0.25-0.5) ln(0.25/0.5) = 0.25 ln 1.5 + 0.25 ln 2
    #     = 0.25 ln 3 (hand computation)
    got = num.psi(REF_1_10, CUR_3_1, n_bins=2).statistic
    assert got == pytest.approx(0.25 * math.log(3.0), rel=1e-12)


def test_hellinger_hand_computed() -> None:
    # sum sqrt(p q) = sqrt(0.375) + sqrt(0.125) = (sqrt 3 + 1) / (2 sqrt 2) = cos 15 deg,
    # so H = sqrt(1 - cos 15 deg) = sqrt(2) sin 7.5 deg (hand computation)
    got = num.hellinger(REF_1_10, CUR_3_1, n_bins=2).statistic
    assert got == pytest.approx(math.sqrt(2.0) * math.sin(math.radians(7.5)), rel=1e-12)


def test_kl_hand_computed_and_scipy_entropy() -> None:
    # KL(cur || ref) = 0.75 ln(0.75/0.5) + 0.25 ln(0.25/0.5) (hand computation)
    expected = 0.75 * math.log(1.5) - 0.25 * math.log(2.0)
    got = num.kl(REF_1_10, CUR_3_1, n_bins=2).statistic
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == pytest.approx(sps.entropy([0.75, 0.25], [0.5, 0.5]), rel=1e-12)  # scipy


def test_jensenshannon_matches_scipy_base2() -> None:
    got = num.jensenshannon(REF_1_10, CUR_3_1, n_bins=2).statistic
    assert got == pytest.approx(scipy_js([0.5, 0.5], [0.75, 0.25], base=2), rel=1e-12)


def test_binned_distances_match_scipy_on_default_bins() -> None:
    prof = NumericalProfile.from_values("x", MID_A)
    edges, p_ref = prof.bin_proportions(num.HIST_BINS)
    counts = np.histogram(MID_B, bins=np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    # np.histogram closes bins on the left, ours on the right; no value of MID_B sits
    # exactly on an edge here, so the counts agree.
    p_cur = counts / counts.sum()
    assert num.jensenshannon(prof, MID_B).statistic == pytest.approx(
        scipy_js(p_ref, p_cur, base=2), rel=1e-10
    )
    assert num.kl(prof, MID_B).statistic == pytest.approx(
        sps.entropy(num.smooth(p_cur), num.smooth(p_ref)), rel=1e-10
    )


def test_psi_smooths_empty_bins_instead_of_inf() -> None:
    # every current value above the reference maximum: all mass in the last bin
    got = num.psi(REF_1_10, [100.0, 200.0], n_bins=2).statistic
    r = np.array([0.5, 0.5])
    c = num.smooth(np.array([0.0, 1.0]))  # (1e-4, 1) renormalised
    assert math.isfinite(got)
    assert got == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-12)


def test_values_on_a_bin_edge_fall_in_the_lower_bin() -> None:
    # edge 5; a current value of exactly 5 belongs to (-inf, 5] like the CDF says
    got = num.psi(REF_1_10, [5.0, 5.0, 6.0, 6.0], n_bins=2).statistic
    assert got == pytest.approx(0.0, abs=1e-15)


def test_non_finite_current_values_are_dropped() -> None:
    b = np.concatenate([MID_B, [np.nan, np.inf, -np.inf]])
    assert num.ks(MID_A, b) == num.ks(MID_A, MID_B)
    assert num.wasserstein(MID_A, b) == num.wasserstein(MID_A, MID_B)


def test_inputs_are_not_modified() -> None:
    b = MID_B.copy()
    num.wasserstein(MID_A, b)
    num.energy(MID_A, b)
    np.testing.assert_array_equal(b, MID_B)


def test_empty_sample_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 1 finite value"):
        num.wasserstein(MID_A, [np.nan])


def _scipy_anderson(a: np.ndarray, b: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that the p-value is capped
        return sps.anderson_ksamp([a, b], variant="midrank")
