"""MMD: detects a joint shift the marginals miss; valid p-values; bounded cost."""

from __future__ import annotations

import numpy as np
import pytest

from modelmonitor.core.dataset import CategoricalColumn, Dataset
from modelmonitor.core.stats import analyze
from modelmonitor.core.stats.multivariate import mmd, multivariate_drift

RNG = np.random.default_rng(12)


def correlated(n: int, rho: float) -> np.ndarray:
    return RNG.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)


def test_correlation_shift_is_seen_by_mmd_but_not_by_marginals() -> None:
    ref, cur = correlated(1500, 0.0), correlated(1500, 0.8)
    res = mmd(ref, cur)
    assert res.pvalue < 0.01
    per_feature = analyze(
        Dataset({"a": ref[:, 0], "b": ref[:, 1]}), Dataset({"a": cur[:, 0], "b": cur[:, 1]})
    )
    assert not per_feature.dataset.drifted


def test_same_distribution_is_not_flagged() -> None:
    res = mmd(correlated(800, 0.3), correlated(800, 0.3))
    assert res.pvalue > 0.05


def test_biased_statistic_hand_computed() -> None:
    # One point each, at 0 and 1 (after standardising by the reference, whose std is 0
    # and is then left as 1). Pooled squared distance median = 1, so k(0, 1) = exp(-1):
    # MMD^2 = k(0,0) + k(1,1) - 2 k(0,1) = 2 - 2 exp(-1).
    res = mmd([[0.0], [0.0]], [[1.0], [1.0]], n_permutations=10)
    assert res.statistic == pytest.approx(2.0 - 2.0 * np.exp(-1.0), rel=1e-12)


def test_pvalue_floor_is_one_over_permutations_plus_one() -> None:
    res = mmd(correlated(200, 0.0), correlated(200, 0.0) + 5.0, n_permutations=19)
    assert res.pvalue == pytest.approx(1.0 / 20.0)


def test_is_seeded_and_bounded_by_max_samples() -> None:
    big_a, big_b = correlated(20_000, 0.0), correlated(20_000, 0.2)
    a = mmd(big_a, big_b, max_samples=300, seed=3)
    b = mmd(big_a, big_b, max_samples=300, seed=3)
    assert a == b


def test_non_finite_rows_dropped_and_bad_shapes_refused() -> None:
    ref = correlated(100, 0.0)
    cur = correlated(100, 0.0)
    cur[:3, 0] = np.nan
    assert 0.0 <= mmd(ref, cur).pvalue <= 1.0
    with pytest.raises(ValueError, match="same number of columns"):
        mmd(ref, cur[:, :1])
    with pytest.raises(ValueError, match="at least 2 complete"):
        mmd(ref, np.full((4, 2), np.nan))


def test_multivariate_drift_on_datasets() -> None:
    ref, cur = correlated(1000, 0.0), correlated(1000, 0.9)
    cat = CategoricalColumn(np.zeros(1000, dtype=np.int32), ("x",))
    result = multivariate_drift(
        Dataset({"a": ref[:, 0], "b": ref[:, 1], "c": cat}),
        Dataset({"a": cur[:, 0], "b": cur[:, 1], "c": cat}),
    )
    assert result.features == ("a", "b")
    assert result.drifted
    assert result.method == "mmd"
    empty = multivariate_drift(Dataset({"a": ref[:, 0]}), Dataset({"a": np.full(10, np.nan)}))
    assert empty.status == "insufficient_data"
    assert not empty.drifted
