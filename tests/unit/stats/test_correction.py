"""Multiple-testing correction on known vectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from modelmonitor.core.stats.correction import adjust_pvalues

P = np.array([0.01, 0.04, 0.03, 0.005, 0.2])


def test_bonferroni_known_vector() -> None:
    # p * k with k = 5, capped at 1 (hand computation)
    np.testing.assert_allclose(adjust_pvalues(P, "bonferroni"), [0.05, 0.2, 0.15, 0.025, 1.0])


def test_bh_known_vector() -> None:
    # sorted p: 0.005, 0.01, 0.03, 0.04, 0.2 -> p * 5 / rank: 0.025, 0.025, 0.05, 0.05, 0.2
    # step-up minimum from the top leaves them unchanged (hand computation)
    np.testing.assert_allclose(adjust_pvalues(P, "fdr"), [0.025, 0.05, 0.05, 0.025, 0.2])


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_bh_equals_scipy_false_discovery_control(p: list[float]) -> None:
    expected = sps.false_discovery_control(p, method="bh")  # source: scipy 1.17.1
    np.testing.assert_allclose(adjust_pvalues(p, "fdr"), expected, rtol=1e-12, atol=1e-15)


def test_none_and_empty() -> None:
    np.testing.assert_array_equal(adjust_pvalues(P, "none"), P)
    assert adjust_pvalues([], "fdr").shape == (0,)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="valid: bonferroni, fdr, none"):
        adjust_pvalues(P, "holm")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues([0.5, 1.5], "bonferroni")
