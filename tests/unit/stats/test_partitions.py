"""Merge correctness of partition profiles (modelmonitor.core.stats.partitions).

Merging N partition profiles must equal the one-pass profile: exact parts (counts,
missing, infinities, min/max, category counts under the cap) exactly, moments to float
tolerance, sketches within their stated rank error; and in any order.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmonitor.core.dataset import CategoricalColumn, Dataset, Feature
from modelmonitor.core.stats.column_profile import (
    OTHER_CATEGORIES,
    CategoricalProfile,
    NumericalProfile,
)
from modelmonitor.core.stats.drift import analyze
from modelmonitor.core.stats.partitions import (
    WINDOW_RANK_EPSILON,
    WINDOW_SKETCH_K,
    ProfileSchema,
    merge,
    profile_partition,
    profile_stream,
)
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.quality import data_quality
from modelmonitor.core.stats.quality_window import window_quality
from modelmonitor.core.stats.window_methods import ks_statistic

FEATURES = (Feature("x", "numerical"), Feature("c", "categorical"))


def _data(n: int, seed: int = 0, n_labels: int = 6) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(size=n)
    x[rng.random(n) < 0.02] = np.nan
    x[rng.random(n) < 0.001] = np.inf
    x[rng.random(n) < 0.001] = -np.inf
    labels = rng.integers(0, n_labels, n)
    codes = np.where(rng.random(n) < 0.03, -1, labels).astype(np.int32)
    cats = tuple(f"k{i}" for i in range(n_labels))
    return Dataset({"x": x, "c": CategoricalColumn(codes, cats)})


def _split(ds: Dataset, parts: int, seed: int = 0) -> list[Dataset]:
    """Uneven contiguous partitions (some tiny), as files of different sizes are."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, ds.n_rows), parts - 1, replace=False))
    bounds = [0, *cuts.tolist(), ds.n_rows]
    return [ds.take(np.arange(a, b)) for a, b in itertools.pairwise(bounds)]


def _true_cdf(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    s = np.sort(values[np.isfinite(values)])
    return np.searchsorted(s, x, side="right") / s.size


def _assert_exact_parts(a: ReferenceProfile, b: ReferenceProfile) -> None:
    assert a.n_rows == b.n_rows
    xa, xb = a["x"], b["x"]
    assert isinstance(xa, NumericalProfile)
    assert isinstance(xb, NumericalProfile)
    assert (xa.n, xa.n_missing, xa.n_pos_inf, xa.n_neg_inf) == (
        xb.n,
        xb.n_missing,
        xb.n_pos_inf,
        xb.n_neg_inf,
    )
    assert (xa.min, xa.max) == (xb.min, xb.max)
    assert math.isclose(xa.mean, xb.mean, rel_tol=1e-12)
    assert math.isclose(xa.m2, xb.m2, rel_tol=1e-10)
    ca, cb = a["c"], b["c"]
    assert isinstance(ca, CategoricalProfile)
    assert isinstance(cb, CategoricalProfile)
    assert ca.n_missing == cb.n_missing
    assert {k: v for k, v in ca.counts.items() if v} == {k: v for k, v in cb.counts.items() if v}


def test_the_stated_rank_error_is_the_libraries_for_k_1000() -> None:
    # Apache DataSketches' a-priori bound, single rank, 99% confidence
    assert WINDOW_SKETCH_K == 1000
    assert pytest.approx(0.00278, abs=1e-5) == WINDOW_RANK_EPSILON


def test_merged_partitions_equal_the_one_pass_profile() -> None:
    ds = _data(300_000)
    schema = ProfileSchema(FEATURES)
    one_pass = profile_partition(ds, schema)
    merged = merge((profile_partition(p, schema) for p in _split(ds, 37)), schema)
    _assert_exact_parts(merged, one_pass)
    # moments against numpy's own two-pass answer, not just against each other
    x = ds["x"]
    assert isinstance(x, np.ndarray)
    finite = x[np.isfinite(x)]
    prof = merged["x"]
    assert isinstance(prof, NumericalProfile)
    assert prof.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert prof.variance == pytest.approx(finite.var(ddof=1), rel=1e-10)
    # the sketch: every CDF value within the stated epsilon of the truth, merged or not
    grid = np.quantile(finite, np.linspace(0.001, 0.999, 400))
    truth = _true_cdf(x, grid)
    for p in (one_pass["x"], prof):
        assert isinstance(p, NumericalProfile)
        assert not p.exact
        assert np.max(np.abs(p.cdf(grid) - truth)) <= WINDOW_RANK_EPSILON


def test_merge_is_order_independent() -> None:
    ds = _data(120_000, seed=3)
    schema = ProfileSchema(FEATURES)
    parts = [profile_partition(p, schema) for p in _split(ds, 23, seed=3)]
    forward = merge(parts, schema)
    rng = np.random.default_rng(5)
    shuffled = merge([parts[i] for i in rng.permutation(len(parts))], schema)
    _assert_exact_parts(forward, shuffled)
    # a tree (pairwise, as a distributed reduce does) gives the same
    level = parts
    while len(level) > 1:
        level = [
            level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    _assert_exact_parts(forward, level[0])
    a, b = forward["x"], shuffled["x"]
    assert isinstance(a, NumericalProfile)
    assert isinstance(b, NumericalProfile)
    # two sketches of the same data: each within epsilon of the truth, so of each other 2x
    assert ks_statistic(a, b) <= 2 * WINDOW_RANK_EPSILON


def test_small_windows_keep_the_exact_sample_through_merges() -> None:
    ds = _data(900, seed=1)
    schema = ProfileSchema(FEATURES)
    merged = profile_stream(_split(ds, 9, seed=1), schema)
    x = merged["x"]
    assert isinstance(x, NumericalProfile)
    assert x.exact
    raw = ds["x"]
    assert isinstance(raw, np.ndarray)
    assert np.array_equal(x.values, np.sort(raw[np.isfinite(raw)]))


def test_drift_on_an_exact_window_profile_equals_the_rows() -> None:
    ref = ReferenceProfile.from_dataset(_data(800, seed=7), list(FEATURES))
    ds = _data(700, seed=8)
    prof = profile_stream(_split(ds, 5), ProfileSchema(FEATURES))
    rows = analyze(ref, ds, features=FEATURES).to_dict()
    merged = analyze(ref, prof, features=FEATURES).to_dict()
    assert merged == rows  # same statistics, p-values, verdicts and counts


def test_drift_on_a_sketched_window_is_marked_approximate_and_close() -> None:
    ref = ReferenceProfile.from_dataset(_data(1000, seed=11), list(FEATURES))
    ds = _data(200_000, seed=12)
    prof = profile_stream(_split(ds, 20), ProfileSchema(FEATURES))
    rows = analyze(ref, ds, features=FEATURES, method="ks", methods={"c": "chi2"})
    approx = analyze(ref, prof, features=FEATURES, method="ks", methods={"c": "chi2"})
    ks_rows, ks_approx = rows.feature("x"), approx.feature("x")
    assert ks_approx.approximate
    assert not ks_rows.approximate
    assert ks_rows.statistic is not None
    assert ks_approx.statistic is not None
    assert abs(ks_approx.statistic - ks_rows.statistic) <= WINDOW_RANK_EPSILON
    chi_rows, chi_approx = rows.feature("c"), approx.feature("c")
    assert not chi_approx.approximate  # counts under the cap: exact
    assert chi_approx.statistic == chi_rows.statistic
    assert chi_approx.p_value == chi_rows.p_value


@pytest.mark.parametrize("method", ["wasserstein", "psi", "jensenshannon", "hellinger", "ttest"])
def test_sketched_window_distances_are_close_to_the_rows(method: str) -> None:
    rng = np.random.default_rng(21)
    ref = ReferenceProfile.from_dataset(
        Dataset({"x": rng.normal(size=5000)}), list(FEATURES[:1]), exact_limit=None
    )
    x = rng.normal(0.3, 1.0, size=100_000)  # a real shift, well past every threshold
    ds = Dataset({"x": x})
    prof = profile_stream(_split(ds, 10), ProfileSchema(FEATURES[:1]))
    exact = analyze(ref, ds, features=FEATURES[:1], method=method).features[0]
    approx = analyze(ref, prof, features=FEATURES[:1], method=method).features[0]
    assert exact.statistic is not None
    assert approx.statistic is not None
    if method == "ttest":  # moments: exact in the profile
        assert approx.statistic == pytest.approx(exact.statistic, rel=1e-9)
        assert not approx.approximate
    elif method == "wasserstein":
        # |F_cur - F_sketch| <= eps at every x, integrated over the window's range
        bound = WINDOW_RANK_EPSILON * (x.max() - x.min()) / ref["x"].std  # type: ignore[union-attr]
        assert approx.approximate
        assert abs(approx.statistic - exact.statistic) <= bound
    else:
        assert approx.approximate
        assert approx.statistic == pytest.approx(exact.statistic, rel=0.05, abs=0.01)
    assert approx.drifted == exact.drifted


def test_methods_that_need_every_value_are_refused_on_a_sketched_window() -> None:
    ref = ReferenceProfile.from_dataset(_data(500, seed=1), list(FEATURES[:1]))
    prof = profile_stream([_data(5000, seed=2)], ProfileSchema(FEATURES[:1]))
    with pytest.raises(ValueError, match="needs every value of the current window"):
        analyze(ref, prof, features=FEATURES[:1], method="anderson")


def test_categories_past_the_cap_become_a_frequent_items_sketch() -> None:
    n_labels = 400
    ds = _data(60_000, seed=4, n_labels=n_labels)
    schema = ProfileSchema(FEATURES, category_cap=100)
    merged = merge((profile_partition(p, schema) for p in _split(ds, 12)), schema)
    col = merged["c"]
    assert isinstance(col, CategoricalProfile)
    assert not col.exact
    raw = ds["c"]
    assert isinstance(raw, CategoricalColumn)
    valid = raw.codes[raw.codes >= 0]
    assert col.n == valid.size  # exact totals
    assert col.n_missing == raw.codes.size - valid.size
    truth = np.bincount(valid, minlength=n_labels)
    est = col.estimated_counts()
    assert sum(est.values()) == col.n
    for label, count in est.items():
        if label != OTHER_CATEGORIES:
            assert abs(count - truth[int(label[1:])]) <= col.count_error


def test_tests_are_refused_on_sketched_categories_and_auto_picks_a_distance() -> None:
    ref = ReferenceProfile.from_dataset(_data(500, seed=3, n_labels=400), list(FEATURES))
    ds = _data(60_000, seed=4, n_labels=400)
    prof = profile_stream(_split(ds, 6), ProfileSchema(FEATURES, category_cap=100))
    with pytest.raises(ValueError, match="frequent-items sketch; use jensenshannon or psi"):
        analyze(ref, prof, features=FEATURES, methods={"c": "chi2"})
    auto = analyze(ref, prof, features=FEATURES).feature("c")
    assert auto.method == "jensenshannon"
    assert auto.approximate


def test_sketched_categories_are_compared_over_well_known_labels_and_one_pool() -> None:
    rng = np.random.default_rng(9)
    k = 3000
    weights = 1.0 / np.arange(1, k + 1)
    p = weights / weights.sum()
    labels = tuple(f"v{i}" for i in range(k))
    ref_col = CategoricalColumn(rng.choice(k, 50_000, p=p).astype(np.int32), labels)
    ref = ReferenceProfile.from_dataset(Dataset({"c": ref_col}), list(FEATURES[1:]))
    cur = Dataset({"c": CategoricalColumn(rng.choice(k, 100_000, p=p).astype(np.int32), labels)})
    prof = profile_stream(_split(cur, 5), ProfileSchema(FEATURES[1:], category_cap=500))
    col = prof["c"]
    assert isinstance(col, CategoricalProfile)
    listed = {k: v for k, v in col.estimated_counts().items() if k != OTHER_CATEGORIES}
    raw = cur["c"]
    assert isinstance(raw, CategoricalColumn)
    truth = np.bincount(raw.codes, minlength=k)
    for label, count in listed.items():  # each listed count within 10% of the truth
        assert abs(count - truth[int(label[1:])]) <= 0.1 * truth[int(label[1:])]
    # same distribution: the pooled comparison raises no alarm
    same = analyze(ref, prof, features=FEATURES[1:], method="jensenshannon").features[0]
    assert not same.drifted


def test_a_window_with_few_categories_stays_exact_under_the_cap() -> None:
    ds = _data(50_000, seed=6)
    schema = ProfileSchema(FEATURES, category_cap=6)
    col = profile_stream(_split(ds, 7), schema)["c"]
    assert isinstance(col, CategoricalProfile)
    assert col.exact


def test_profiles_of_different_schemas_do_not_merge() -> None:
    ds = _data(100)
    a = profile_partition(ds, ProfileSchema(FEATURES))
    b = profile_partition(ds, ProfileSchema(FEATURES, sketch_k=200))
    with pytest.raises(ValueError, match="different settings"):
        a.merge(b)


def test_a_partition_without_a_schema_column_is_refused() -> None:
    ds = Dataset({"x": np.arange(5.0)})
    with pytest.raises(ValueError, match="no column"):
        profile_partition(ds, ProfileSchema(FEATURES))


def test_schema_is_validated() -> None:
    with pytest.raises(ValueError, match="at least one feature"):
        ProfileSchema(())
    with pytest.raises(ValueError, match="twice"):
        ProfileSchema((Feature("x", "numerical"), Feature("x", "numerical")))
    with pytest.raises(ValueError, match="category_cap"):
        ProfileSchema(FEATURES, category_cap=0)


def test_data_quality_of_a_window_profile_matches_the_rows_on_exact_parts() -> None:
    ref = ReferenceProfile.from_dataset(_data(2000, seed=31), list(FEATURES))
    ds = _data(40_000, seed=32)
    prof = profile_stream(_split(ds, 8), ProfileSchema(FEATURES))
    rows = data_quality(ds, ref, features=list(FEATURES)).to_dict()
    merged = window_quality(prof, ref, features=list(FEATURES)).to_dict()
    for fr, fm in zip(rows["features"], merged["features"], strict=True):
        for key in ("rows", "missing", "pos_inf", "neg_inf", "min", "max", "new_category_count"):
            assert fr[key] == fm[key], key
        # out of range: estimated from the sketch, within its rank error of the rows
        assert abs(fr["out_of_range"] - fm["out_of_range"]) <= WINDOW_RANK_EPSILON * fr["rows"]


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            # moments of values near the float range overflow in one pass as in a merge
            st.floats(min_value=-1e9, max_value=1e9),
            st.sampled_from([math.nan, math.inf, -math.inf]),
            st.integers(-5, 5).map(float),
        ),
        min_size=1,
        max_size=3000,
    ),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
    seed=st.integers(0, 2**16),
)
def test_any_split_in_any_order_merges_to_the_one_pass_profile(
    values: list[float], cuts: list[int], seed: int
) -> None:
    x = np.asarray(values, dtype=np.float64)
    labels = CategoricalColumn.from_values(
        ["a" if v > 0 else "b" if v < 0 else None for v in values]
    )
    ds = Dataset({"x": x, "c": labels})
    bounds = sorted({0, x.size, *(c for c in cuts if c <= x.size)})
    parts = [ds.take(np.arange(a, b)) for a, b in itertools.pairwise(bounds)]
    schema = ProfileSchema(FEATURES, exact_limit=500)
    profiles = [profile_partition(p, schema) for p in parts]
    order = np.random.default_rng(seed).permutation(len(profiles))
    merged = merge([profiles[i] for i in order], schema)
    one_pass = profile_partition(ds, schema)
    xa, xb = merged["x"], one_pass["x"]
    assert isinstance(xa, NumericalProfile)
    assert isinstance(xb, NumericalProfile)
    assert (xa.n, xa.n_missing, xa.n_pos_inf, xa.n_neg_inf) == (
        xb.n,
        xb.n_missing,
        xb.n_pos_inf,
        xb.n_neg_inf,
    )
    if xa.n:
        assert (xa.min, xa.max) == (xb.min, xb.max)
        assert xa.mean == pytest.approx(xb.mean, rel=1e-9, abs=1e-300 + abs(xb.mean) * 1e-9)
        # Chan's update vs one pass: rounding relative to the data's magnitude
        magnitude = xb.n * max(abs(xb.min), abs(xb.max), 1.0) ** 2
        assert abs(xa.m2 - xb.m2) <= 1e-9 * magnitude
    if xa.exact and xb.exact:
        assert np.array_equal(xa.values, xb.values)
    ca, cb = merged["c"], one_pass["c"]
    assert isinstance(ca, CategoricalProfile)
    assert isinstance(cb, CategoricalProfile)
    assert ca.n_missing == cb.n_missing
    assert {k: v for k, v in ca.counts.items() if v} == {k: v for k, v in cb.counts.items() if v}
