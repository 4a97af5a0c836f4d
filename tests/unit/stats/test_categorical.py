"""Categorical methods against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon as scipy_js

from modelmonitor.core.dataset import CategoricalColumn
from modelmonitor.core.stats import categorical as cat
from modelmonitor.core.stats.column_profile import CategoricalProfile
from modelmonitor.core.stats.errors import DegenerateInputWarning


def col(counts: dict[str, int]) -> CategoricalColumn:
    labels = [k for k, v in counts.items() for _ in range(v)]
    return CategoricalColumn.from_values(labels)


REF = col({"a": 30, "b": 50, "c": 20})
CUR = col({"a": 45, "b": 40, "c": 15})


def test_align_keeps_reference_order_and_appends_new_categories() -> None:
    labels, r, c = cat.align(REF, col({"d": 5, "b": 3}))
    assert labels == ("a", "b", "c", "d")
    np.testing.assert_array_equal(r, [30, 50, 20, 0])
    np.testing.assert_array_equal(c, [0, 3, 0, 5])


def test_chi2_matches_scipy_contingency_without_yates() -> None:
    table = np.array([[30, 50, 20], [45, 40, 15]])
    expected = sps.chi2_contingency(table, correction=False)  # source: scipy 1.17.1
    got = cat.chi2(REF, CUR)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-10)


def test_chi2_handles_a_category_unseen_in_the_reference() -> None:
    cur = col({"a": 30, "b": 50, "c": 10, "new": 10})
    table = np.array([[30, 50, 20, 0], [30, 50, 10, 10]])
    expected = sps.chi2_contingency(table, correction=False)  # source: scipy 1.17.1
    got = cat.chi2(REF, cur)
    assert math.isfinite(got.statistic)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-10)


def test_chi2_on_profile_equals_chi2_on_column() -> None:
    prof = CategoricalProfile.from_column("x", REF)
    assert cat.chi2(prof, CUR) == cat.chi2(REF, CUR)


def test_chi2_single_category_is_degenerate() -> None:
    with pytest.warns(DegenerateInputWarning):
        got = cat.chi2(col({"a": 3}), col({"a": 5}))
    assert (got.statistic, got.pvalue) == (0.0, 1.0)


def test_jensenshannon_matches_scipy_base2() -> None:
    p = np.array([30, 50, 20, 0]) / 100
    q = np.array([30, 50, 10, 10]) / 100
    expected = scipy_js(p, q, base=2)  # source: scipy 1.17.1
    got = cat.jensenshannon(REF, col({"a": 30, "b": 50, "c": 10, "new": 10}))
    assert got.statistic == pytest.approx(expected, rel=1e-12)


def test_psi_hand_computed() -> None:
    # ref (0.3, 0.5, 0.2), cur (0.45, 0.4, 0.15): PSI = sum (c - r) ln(c / r)
    expected = 0.15 * math.log(1.5) - 0.1 * math.log(0.8) - 0.05 * math.log(0.75)
    assert cat.psi(REF, CUR).statistic == pytest.approx(expected, rel=1e-12)


def test_fisher_matches_scipy() -> None:
    ref = col({"yes": 3, "no": 9})
    cur = col({"yes": 8, "no": 2})
    expected = sps.fisher_exact([[3, 9], [8, 2]])  # source: scipy 1.17.1
    got = cat.fisher(ref, cur)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(expected.pvalue, rel=1e-12)


def test_fisher_tea_tasting_published_value() -> None:
    # Fisher's lady tasting tea (Fisher 1935): table [[3, 1], [1, 3]], two-sided p = 34/70
    ref = col({"milk": 3, "tea": 1})
    cur = col({"milk": 1, "tea": 3})
    assert cat.fisher(ref, cur).pvalue == pytest.approx(34 / 70, rel=1e-12)


def test_ztest_hand_computed() -> None:
    # p_ref = 40/100, p_cur = 55/100, pooled 0.475:
    # z = 0.15 / sqrt(0.475 * 0.525 * (1/100 + 1/100)) (hand computation)
    ref = col({"a": 40, "b": 60})
    cur = col({"a": 55, "b": 45})
    z = 0.15 / math.sqrt(0.475 * 0.525 * 0.02)
    got = cat.ztest(ref, cur)
    assert got.statistic == pytest.approx(z, rel=1e-12)
    assert got.pvalue == pytest.approx(math.erfc(z / math.sqrt(2.0)), rel=1e-10)
    # identity: z^2 is the uncorrected 2 x 2 chi-squared statistic, same p-value
    chi = sps.chi2_contingency([[40, 60], [55, 45]], correction=False)
    assert got.statistic**2 == pytest.approx(chi.statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(chi.pvalue, rel=1e-10)


@pytest.mark.parametrize("func", [cat.fisher, cat.ztest])
def test_binary_tests_refuse_more_than_two_categories(func: object) -> None:
    with pytest.raises(ValueError, match=r"at most 2 categories.*use chi2"):
        func(REF, CUR)  # type: ignore[operator]


def test_missing_values_are_dropped() -> None:
    with_missing = CategoricalColumn(
        np.concatenate([CUR.codes, np.array([-1, -1], dtype=np.int32)]), CUR.categories
    )
    assert cat.chi2(REF, with_missing) == cat.chi2(REF, CUR)


def test_plain_label_sequences_are_accepted() -> None:
    assert cat.chi2(["a", "b", "b"], ["a", "a", "b"]) == cat.chi2(
        col({"a": 1, "b": 2}), col({"a": 2, "b": 1})
    )


def test_float_codes_become_labels() -> None:
    ref = np.array([0.0, 1.0, 1.0, np.nan])
    cur = np.array([1.0, 1.0, 0.0])
    assert cat.chi2(ref, cur) == cat.chi2(["0", "1", "1"], ["1", "1", "0"])


def test_all_missing_current_is_a_clear_error() -> None:
    empty = CategoricalColumn(np.array([-1, -1], dtype=np.int32), ("a",))
    with pytest.raises(ValueError, match="at least one non-missing value"):
        cat.chi2(REF, empty)
