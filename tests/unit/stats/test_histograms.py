"""Reference-vs-current distributions for the HTML report (core/stats/histograms.py)."""

from __future__ import annotations

import numpy as np
import pytest

from modelmonitor.core.dataset import CategoricalColumn, Dataset, Feature
from modelmonitor.core.stats.column_profile import CategoricalProfile, NumericalProfile
from modelmonitor.core.stats.histograms import (
    CategoricalBars,
    NumericalHistogram,
    categorical_bars,
    distributions,
    numerical_histogram,
)
from modelmonitor.core.stats.profile import ReferenceProfile


def _counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (edges[i], edges[i+1]], the first bin closed: by direct comparison."""
    out = np.zeros(edges.size - 1, dtype=int)
    for v in values:
        i = int(np.argmax(v <= edges[1:])) if v <= edges[-1] else edges.size - 2
        out[i] += 1
    return out


def test_reference_and_current_share_bins_and_shares_are_exact() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 2000)
    cur = rng.normal(0.5, 1, 500)
    prof = NumericalProfile.from_values("x", ref, exact_limit=None)
    h = numerical_histogram(prof, cur, bins=12)
    assert isinstance(h, NumericalHistogram)
    assert h.edges.size == 13
    assert np.all(np.diff(h.edges) > 0)
    np.testing.assert_allclose(np.diff(h.edges), np.diff(h.edges)[0])  # equal width
    assert h.edges[0] <= ref.min()
    assert h.edges[-1] >= ref.max()
    np.testing.assert_allclose(h.reference, _counts(ref, h.edges) / ref.size, atol=1e-12)
    inside = cur[(cur >= h.edges[0]) & (cur <= h.edges[-1])]
    clipped = np.clip(cur, h.edges[0], h.edges[-1])
    np.testing.assert_allclose(h.current, _counts(clipped, h.edges) / cur.size, atol=1e-12)
    assert h.clipped == cur.size - inside.size
    assert h.reference.sum() == pytest.approx(1)
    assert h.current.sum() == pytest.approx(1)
    assert (h.n_reference, h.n_current) == (2000, 500)


def test_a_shifted_window_widens_the_range_and_far_outliers_are_clipped() -> None:
    ref = np.linspace(0, 1, 1000)
    cur = np.concatenate([np.linspace(2, 3, 999), [1e9]])
    prof = NumericalProfile.from_values("x", ref, exact_limit=None)
    h = numerical_histogram(prof, cur, bins=10)
    assert h is not None
    assert h.edges[0] == 0
    assert 2.9 < h.edges[-1] < 3.01
    assert h.clipped >= 1
    assert h.reference[:4].sum() == pytest.approx(1)  # [0, 1] in the first bins
    assert h.current[:6].sum() == pytest.approx(0)


def test_a_sketched_profile_gives_nearly_the_exact_shares() -> None:
    rng = np.random.default_rng(2)
    ref = rng.gamma(2, 2, 50_000)
    cur = rng.gamma(2, 2, 5_000)
    exact = numerical_histogram(NumericalProfile.from_values("x", ref, exact_limit=None), cur)
    sketch = numerical_histogram(NumericalProfile.from_values("x", ref, exact_limit=100), cur)
    assert exact is not None
    assert sketch is not None
    np.testing.assert_allclose(sketch.edges, exact.edges)
    assert np.abs(sketch.reference - exact.reference).max() < 0.02  # KLL k=200 rank error


def test_a_constant_column_gets_one_bin_and_no_values_none() -> None:
    prof = NumericalProfile.from_values("c", np.full(10, 3.0), exact_limit=None)
    h = numerical_histogram(prof, np.full(4, 3.0))
    assert h is not None
    assert h.edges.size == 2
    assert h.reference.tolist() == [1.0]
    assert h.current.tolist() == [1.0]
    empty = NumericalProfile.from_values("e", np.array([np.nan]), exact_limit=None)
    assert numerical_histogram(empty, np.array([np.nan, np.inf])) is None


def test_categories_largest_first_new_ones_included_rest_summed() -> None:
    prof = CategoricalProfile("c", {"a": 50, "b": 30, "c": 15, "d": 5}, 0)
    col = CategoricalColumn.from_values(["a"] * 10 + ["new"] * 60 + ["d"] * 30)
    bars = categorical_bars(prof, col, max_categories=3)
    assert isinstance(bars, CategoricalBars)
    assert bars.labels == ("new", "a", "(3 others)")
    np.testing.assert_allclose(bars.reference, [0.0, 0.5, 0.5])
    np.testing.assert_allclose(bars.current, [0.6, 0.1, 0.3])
    assert bars.other_categories == 3
    everything = categorical_bars(prof, col, max_categories=10)
    assert everything.other_categories == 0
    assert len(everything.labels) == 5


def test_distributions_skip_missing_and_mismatched_columns() -> None:
    feats = [
        Feature("x", "numerical"),
        Feature("c", "categorical"),
        Feature("gone", "numerical"),
        Feature("wrong", "numerical"),
    ]
    ref = ReferenceProfile.from_dataset(
        Dataset.from_mapping(
            {"x": [1.0, 2, 3], "c": ["a", "b", "a"], "gone": [1.0, 2, 3], "wrong": [1.0, 2, 3]}
        ),
        feats,
        exact_limit=None,
    )
    current = {
        "x": np.array([2.0, 3.0]),
        "c": CategoricalColumn.from_values(["b", "b"]),
        "wrong": CategoricalColumn.from_values(["u", "v"]),
    }
    out = distributions(ref, current, feats)
    assert set(out) == {"x", "c"}
    with pytest.raises(ValueError, match=">= 1"):
        distributions(ref, current, feats, bins=0)
