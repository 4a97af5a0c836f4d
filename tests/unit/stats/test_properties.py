"""Property tests: identical samples, p-value range, invariance, symmetry."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelmonitor.core.dataset import CategoricalColumn, Dataset
from modelmonitor.core.stats import analyze
from modelmonitor.core.stats import categorical as cat
from modelmonitor.core.stats import numerical as num
from modelmonitor.core.stats.errors import DegenerateInputWarning
from modelmonitor.core.stats.methods import CATEGORICAL, NUMERICAL

# more examples for a deeper run: MM_HYPOTHESIS_EXAMPLES=300
SETTINGS = settings(max_examples=int(os.environ.get("MM_HYPOTHESIS_EXAMPLES", "40")), deadline=None)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
samples = hnp.arrays(np.float64, st.integers(2, 60), elements=finite)
# small integers: ties, and affine maps by powers of two and integer shifts stay exact
int_samples = hnp.arrays(np.float64, st.integers(2, 60), elements=st.integers(-50, 50))
codes = hnp.arrays(np.int32, st.integers(2, 80), elements=st.integers(-1, 3))
LABELS = ("a", "b", "c", "d")


def quiet(func: Callable[..., Any], *args: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        return func(*args)


def valid_cats(c: np.ndarray) -> bool:
    return bool(np.count_nonzero(c >= 0) >= 2)


def nonconstant(x: np.ndarray) -> bool:
    return bool(np.ptp(x) > 1e-9 * max(1.0, float(np.max(np.abs(x)))))


# --- identical samples: no drift, with every method ----------------------------------------
@pytest.mark.parametrize("method", sorted(NUMERICAL))
@SETTINGS
@given(x=samples)
def test_identical_numerical_samples_do_not_drift(method: str, x: np.ndarray) -> None:
    ds = Dataset({"x": x})
    f = analyze(ds, ds, method=method).feature("x")
    assert not f.drifted
    if f.kind == "distance":
        assert f.statistic == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", sorted(CATEGORICAL))
@SETTINGS
@given(c=codes)
def test_identical_categorical_samples_do_not_drift(method: str, c: np.ndarray) -> None:
    assume(valid_cats(c))
    if method in ("fisher", "ztest"):
        c = np.where(c > 1, 1, c).astype(np.int32)  # binary
    ds = Dataset({"x": CategoricalColumn(c, LABELS)})
    f = analyze(ds, ds, method=method).feature("x")
    assert not f.drifted
    if f.kind == "distance":
        assert f.statistic == pytest.approx(0.0, abs=1e-12)


# --- p-values lie in [0, 1] ---------------------------------------------------------------
@pytest.mark.parametrize("func", [num.ks, num.anderson, num.cramervonmises, num.ttest])
@SETTINGS
@given(a=samples, b=samples)
def test_numerical_pvalues_in_unit_interval(func: Callable[..., Any], a: Any, b: Any) -> None:
    p = quiet(func, a, b).pvalue
    assert 0.0 <= p <= 1.0


@pytest.mark.parametrize("func", [cat.chi2, cat.fisher, cat.ztest])
@SETTINGS
@given(a=codes, b=codes)
def test_categorical_pvalues_in_unit_interval(func: Callable[..., Any], a: Any, b: Any) -> None:
    assume(valid_cats(a) and valid_cats(b))
    a, b = (np.where(x > 1, 1, x).astype(np.int32) for x in (a, b))
    p = quiet(func, CategoricalColumn(a, LABELS), CategoricalColumn(b, LABELS)).pvalue
    assert 0.0 <= p <= 1.0


# --- normed distances: invariant to shifting and scaling both samples together ------------
@pytest.mark.parametrize("func", [num.wasserstein, num.energy])
@SETTINGS
@given(a=samples, b=samples, scale=st.floats(1e-3, 1e3), shift=st.floats(-1e3, 1e3))
def test_cdf_distances_affine_invariant(
    func: Callable[..., Any], a: Any, b: Any, scale: float, shift: float
) -> None:
    assume(nonconstant(a))
    base = func(a, b).statistic
    moved = func(a * scale + shift, b * scale + shift).statistic
    assert moved == pytest.approx(base, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("func", [num.psi, num.jensenshannon, num.hellinger, num.kl])
@SETTINGS
@given(a=int_samples, b=int_samples, power=st.integers(-4, 4), shift=st.integers(-100, 100))
def test_binned_distances_affine_invariant(
    func: Callable[..., Any], a: Any, b: Any, power: int, shift: int
) -> None:
    scale = 2.0**power  # exact in floating point, so bin membership cannot flip
    base = func(a, b).statistic
    moved = func(a * scale + shift, b * scale + shift).statistic
    assert moved == pytest.approx(base, rel=1e-9, abs=1e-12)


# --- symmetry where the method is symmetric -------------------------------------------------
@pytest.mark.parametrize("func", [num.ks, num.cramervonmises, num.anderson, num.ttest])
@SETTINGS
@given(a=samples, b=samples)
def test_symmetric_numerical_tests(func: Callable[..., Any], a: Any, b: Any) -> None:
    ab, ba = quiet(func, a, b), quiet(func, b, a)
    assert ab.pvalue == pytest.approx(ba.pvalue, rel=1e-9, abs=1e-12)
    assert abs(ab.statistic) == pytest.approx(abs(ba.statistic), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("func", "binary"),
    [(cat.chi2, False), (cat.jensenshannon, False), (cat.psi, False), (cat.fisher, True),
     (cat.ztest, True)],
)  # fmt: skip
@SETTINGS
@given(a=codes, b=codes)
def test_symmetric_categorical_methods(
    func: Callable[..., Any], binary: bool, a: Any, b: Any
) -> None:
    assume(valid_cats(a) and valid_cats(b))
    if binary:
        a, b = (np.where(x > 1, 1, x).astype(np.int32) for x in (a, b))
    ca, cb = CategoricalColumn(a, LABELS), CategoricalColumn(b, LABELS)
    ab, ba = quiet(func, ca, cb), quiet(func, cb, ca)
    if hasattr(ab, "pvalue"):
        assert ab.pvalue == pytest.approx(ba.pvalue, rel=1e-9, abs=1e-12)
    if func is not cat.fisher:  # the odds ratio inverts; its p-value is symmetric
        assert abs(ab.statistic) == pytest.approx(abs(ba.statistic), rel=1e-9, abs=1e-12)


# --- distances are bounded where the definition bounds them ---------------------------------
@SETTINGS
@given(a=samples, b=samples)
def test_js_and_hellinger_in_unit_interval(a: Any, b: Any) -> None:
    for func in (num.jensenshannon, num.hellinger):
        assert 0.0 <= func(a, b).statistic <= 1.0 + 1e-12
