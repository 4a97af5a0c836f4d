"""Data quality of a current window against a reference (profile or data set)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from modelmonitor.core.dataset import CategoricalColumn, Dataset, Feature
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.quality import QualityThresholds, data_quality


def _reference() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    x[:50] = np.nan  # 1% missing
    return Dataset.from_mapping(
        {
            "x": x,
            "c": rng.choice(["a", "b", "c"], size=5000).tolist(),
            "k": np.full(5000, 7.0),
        }
    )


def _as_reference(kind: str, ds: Dataset) -> ReferenceProfile | Dataset:
    return ReferenceProfile.from_dataset(ds) if kind == "profile" else ds


REFERENCE_KINDS = ["dataset", "profile"]


@pytest.mark.parametrize("kind", REFERENCE_KINDS)
def test_same_distribution_has_no_issues(kind: str) -> None:
    ref = _reference()
    report = data_quality(ref, _as_reference(kind, ref))
    assert report.ok, report.issues
    assert report.missing_columns == ()
    assert report.extra_columns == ()
    fx = report.feature("x")
    assert fx.missing == 50
    assert fx.missing_share == pytest.approx(0.01)
    assert fx.reference_missing_share == pytest.approx(0.01)
    assert fx.out_of_range == 0
    assert report.feature("k").constant
    assert report.feature("k").reference_constant


@pytest.mark.parametrize("kind", REFERENCE_KINDS)
def test_counts_missing_infinite_and_out_of_range(kind: str) -> None:
    ref = _reference()
    lo = float(np.nanmin(ref["x"]))
    hi = float(np.nanmax(ref["x"]))
    x = np.array([np.nan, np.nan, np.inf, -np.inf, lo - 1, hi + 1, hi + 2, 0.0, 0.1, 0.2])
    cur = Dataset.from_mapping({"x": x, "c": ["a"] * 10, "k": np.full(10, 7.0)})
    report = data_quality(cur, _as_reference(kind, ref))
    f = report.feature("x")
    assert (f.missing, f.pos_inf, f.neg_inf) == (2, 1, 1)
    assert f.missing_share == pytest.approx(0.2)
    assert f.missing_share_change == pytest.approx(0.19)
    # finite values outside [lo, hi]: lo-1, hi+1, hi+2; infinities are counted apart
    assert f.out_of_range == 3
    assert f.out_of_range_share == pytest.approx(3 / 8)
    assert f.reference_min == pytest.approx(lo)
    assert f.min == pytest.approx(lo - 1)
    kinds = {(i.feature, i.kind) for i in report.issues}
    assert {("x", "missing_share"), ("x", "infinite"), ("x", "out_of_range")} <= kinds
    # "c" became constant while the reference had three categories
    assert ("c", "constant") in kinds
    # "k" was constant already: not an issue
    assert ("k", "constant") not in kinds


@pytest.mark.parametrize("kind", REFERENCE_KINDS)
def test_new_categories_with_shares(kind: str) -> None:
    ref = _reference()
    values = ["a"] * 6 + ["zz"] * 3 + ["yy"] + [None] * 2
    cur = Dataset.from_mapping({"x": np.zeros(12), "c": values, "k": np.full(12, 7.0)})
    f = data_quality(cur, _as_reference(kind, ref)).feature("c")
    assert f.missing == 2
    assert f.new_category_count == 4
    assert f.new_category_share == pytest.approx(0.4)
    assert [(c.value, c.count) for c in f.new_categories] == [("zz", 3), ("yy", 1)]
    assert f.new_categories[0].share == pytest.approx(0.3)


def test_new_category_threshold() -> None:
    ref = _reference()
    values = ["a"] * 99 + ["zz"]
    cur = Dataset.from_mapping({"x": np.zeros(100), "c": values, "k": np.full(100, 7.0)})
    strict = data_quality(cur, ref)
    lax = data_quality(cur, ref, thresholds=QualityThresholds(new_category_share=0.05))
    assert any(i.kind == "new_category" for i in strict.issues)
    assert not any(i.kind == "new_category" for i in lax.issues)


@pytest.mark.parametrize("kind", REFERENCE_KINDS)
def test_missing_extra_columns_and_type_mismatch(kind: str) -> None:
    ref = _reference()
    cur = Dataset(
        {
            "x": CategoricalColumn.from_values(["1", "oops", None]),
            "k": np.array([7.0, 7.0, 7.0]),
            "new": np.array([1.0, 2.0, 3.0]),
        }
    )
    report = data_quality(cur, _as_reference(kind, ref))
    assert report.missing_columns == ("c",)
    assert report.extra_columns == ("new",)
    assert [f.name for f in report.type_mismatches] == ["x"]
    fx = report.feature("x")
    assert (fx.reference_type, fx.type, fx.missing) == ("numerical", "categorical", 1)
    kinds = {(i.feature, i.kind) for i in report.issues}
    assert kinds >= {("c", "missing_column"), ("x", "type_mismatch")}
    d = report.to_dict()
    assert d["type_mismatches"] == [
        {"name": "x", "reference_type": "numerical", "type": "categorical"}
    ]


def test_all_missing_and_features_restrict() -> None:
    ref = _reference()
    cur = Dataset.from_mapping({"x": np.full(4, np.nan), "c": ["a", "b", "c", "a"]})
    report = data_quality(cur, ref, features=[Feature("x", "numerical")])
    assert [f.name for f in report.features] == ["x"]
    assert report.extra_columns == ("c",)
    assert [(i.feature, i.kind) for i in report.issues] == [("x", "all_missing")]
    assert report.feature("x").out_of_range_share is None or report.feature("x").out_of_range == 0
    with pytest.raises(ValueError, match="not in the reference"):
        data_quality(cur, ref, features=[Feature("nope", "numerical")])


def test_report_is_json_serialisable_without_nan() -> None:
    ref = _reference()
    cur = Dataset.from_mapping({"x": np.full(3, np.nan), "c": ["q", "q", None]})
    d = data_quality(cur, ReferenceProfile.from_dataset(ref)).to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["issue_count"] == len(back["issues"]) > 0
    assert {f["name"] for f in back["features"]} == {"x", "c"}


# --- property: the fast paths agree with a plain computation ------------------------------

_values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([np.nan, np.inf, -np.inf]),
)


@settings(max_examples=200, deadline=None)
@given(
    ref=arrays(np.float64, st.integers(1, 40), elements=_values),
    cur=arrays(np.float64, st.integers(1, 40), elements=_values),
)
def test_numerical_counts_match_a_plain_computation(ref: np.ndarray, cur: np.ndarray) -> None:
    for reference in (Dataset({"x": ref}), ReferenceProfile.from_dataset(Dataset({"x": ref}))):
        f = data_quality(Dataset({"x": cur}), reference).feature("x")
        finite_ref = ref[np.isfinite(ref)]
        finite_cur = cur[np.isfinite(cur)]
        assert f.missing == int(np.isnan(cur).sum())
        assert f.pos_inf == int((cur == np.inf).sum())
        assert f.neg_inf == int((cur == -np.inf).sum())
        if finite_ref.size:
            lo, hi = finite_ref.min(), finite_ref.max()
            expected = int(((finite_cur < lo) | (finite_cur > hi)).sum())
            assert f.out_of_range == expected
        else:
            assert f.out_of_range == 0
        if finite_cur.size:
            assert f.min == finite_cur.min()
            assert f.max == finite_cur.max()
            assert f.constant == (finite_cur.min() == finite_cur.max())
        else:
            assert f.min is None
            assert not f.constant
