"""The performance estimation's fast paths against the straightforward formulas they replace.

Each vectorised function is compared with the plain definition (a loop over rows or
classes, or ``np.unique`` / ``np.add.at``) on seeded data with ties, and every sort that is
skipped for sorted input is checked to give the same result as on shuffled input. The
estimation's own known answers (scikit-learn, textbook DeLong, brute-force expected AUC)
stay in test_performance.py, unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

from modelmonitor.core.stats.performance import ClassificationReference
from modelmonitor.core.stats.performance.auc import (
    _influence,
    is_sorted,
    midranks,
    realized_auc,
    sort_order,
)
from modelmonitor.core.stats.performance.calibration import fit_isotonic
from modelmonitor.core.stats.performance.cbpe import estimate_classification
from modelmonitor.core.stats.performance.confusion import (
    MOMENTS_MAX_CLASSES,
    count_metrics,
    expected_confusion,
    expected_var,
    expected_vars,
    predicted_moments,
)

REL = 1e-12


def _proba(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    proba = rng.dirichlet(np.ones(k), n)
    pred = rng.integers(0, k, n).astype(np.intp)
    return proba, pred


@pytest.mark.parametrize("k", [2, 3, 5])
def test_expected_confusion_equals_the_row_loop(k: int) -> None:
    proba, pred = _proba(np.random.default_rng(1), 3000, k)
    plain = np.zeros((k, k))
    for i in range(proba.shape[0]):
        plain[:, pred[i]] += proba[i]
    np.testing.assert_allclose(expected_confusion(proba, pred, k), plain, rtol=REL, atol=1e-9)


def test_expected_confusion_with_a_class_never_predicted() -> None:
    proba, _ = _proba(np.random.default_rng(2), 500, 3)
    pred = np.zeros(500, dtype=np.intp)
    e = expected_confusion(proba, pred, 3)
    assert e.shape == (3, 3)
    np.testing.assert_allclose(e[:, 0], proba.sum(axis=0), rtol=REL)
    assert not e[:, 1:].any()


@pytest.mark.parametrize("k", [2, 4])
def test_predicted_moments_equal_the_outer_products(k: int) -> None:
    proba, pred = _proba(np.random.default_rng(3), 2000, k)
    m = predicted_moments(proba, pred, k)
    for c in range(k):
        rows = proba[pred == c]
        np.testing.assert_allclose(m[c], rows.T @ rows, rtol=1e-11)


@pytest.mark.parametrize(
    ("k", "pos"),
    [(2, True), (2, False), (3, False), (MOMENTS_MAX_CLASSES, False),
     (MOMENTS_MAX_CLASSES + 2, False)],
)  # fmt: skip
def test_expected_vars_equal_the_per_row_sum(k: int, pos: bool) -> None:
    """Both routes (second moments up to MOMENTS_MAX_CLASSES, per-row above) against the
    per-row definition ``sum_i Var(g[Y_i, pred_i])`` written out with a loop."""
    proba, pred = _proba(np.random.default_rng(4 + k), 1500, k)
    e = expected_confusion(proba, pred, k)
    metrics = count_metrics(e, 1 if pos else None)
    gs = [g for _, g in metrics.values()]
    got = expected_vars(proba, pred, e, gs)
    for g, v in zip(gs, got, strict=True):
        col = g[:, pred].T  # (n, k): g[j, pred_i]
        plain = float(((col**2 * proba).sum(axis=1) - (col * proba).sum(axis=1) ** 2).sum())
        assert v == pytest.approx(plain, rel=1e-9, abs=1e-15)
        assert v == pytest.approx(expected_var(proba, pred, e, g), rel=1e-9, abs=1e-15)


def test_sort_order_skips_sorted_input_only() -> None:
    x = np.random.default_rng(5).random(1000)
    order = sort_order(x)
    assert order is not None
    assert is_sorted(x[order])
    assert sort_order(x[order]) is None
    assert sort_order(np.array([1.0, 1.0, 2.0])) is None  # ties are sorted
    assert sort_order(np.array([2.0, 1.0])) is not None
    assert is_sorted(np.array([]))
    assert is_sorted(np.array([3.0]))


def test_midranks_of_sorted_input_equal_those_of_shuffled_input() -> None:
    rng = np.random.default_rng(6)
    x = np.round(rng.random(4000), 2)  # many ties
    shuffled = midranks(x)
    order = np.argsort(x, kind="stable")
    np.testing.assert_array_equal(midranks(x[order]), shuffled[order])


def test_influence_of_sorted_input_equals_that_of_shuffled_input() -> None:
    rng = np.random.default_rng(7)
    score = np.round(rng.random(3000), 2)
    positive = rng.random(3000) < score
    got = _influence(positive, score)
    order = np.argsort(score, kind="stable")
    got_sorted = _influence(positive[order], score[order])
    assert got is not None
    assert got_sorted is not None
    assert got_sorted[0] == pytest.approx(got[0], rel=REL)
    np.testing.assert_allclose(got_sorted[1], got[1][order], rtol=1e-10, atol=1e-12)


def _fit_isotonic_with_np_unique(score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, ...]:
    """The map as it was fitted before: np.unique's groups, bincount means."""
    from scipy.optimize import isotonic_regression

    ux, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=label, minlength=ux.size) / counts
    fitted = isotonic_regression(means, weights=counts.astype(np.float64)).x
    change = np.flatnonzero(np.diff(fitted) != 0)
    keep = np.unique(np.concatenate(([0, ux.size - 1], change, change + 1)))
    return ux[keep], fitted[keep]


def test_fit_isotonic_equals_the_np_unique_route_in_any_row_order() -> None:
    rng = np.random.default_rng(8)
    s = np.round(rng.random(5000), 3)  # ties
    y = (rng.random(5000) < s).astype(np.float64)
    x_plain, y_plain = _fit_isotonic_with_np_unique(s, y)
    order = np.argsort(s)
    for ours in (fit_isotonic(s, y), fit_isotonic(s[order], y[order])):
        np.testing.assert_array_equal(ours.x, x_plain)
        np.testing.assert_allclose(ours.y, y_plain, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_estimates_do_not_depend_on_the_row_order(k: int) -> None:
    """The binary path reorders the window by score; the estimates are sums over rows."""
    rng = np.random.default_rng(9)
    proba, pred = _proba(rng, 4000, k)
    proba = np.round(proba, 3)
    proba /= proba.sum(axis=1, keepdims=True)
    pos = 1 if k == 2 else None
    est, _ = estimate_classification(proba, proba, pred, pos, 1.96)
    perm = rng.permutation(4000)
    est2, _ = estimate_classification(proba[perm], proba[perm], pred[perm], pos, 1.96)
    for m, e in est.items():
        assert e.value == pytest.approx(est2[m].value, rel=1e-10), m
        assert e.std == pytest.approx(est2[m].std, rel=1e-9), m


def test_evaluate_gives_the_same_report_for_any_row_order() -> None:
    """fit and evaluate sort binary rows by score once; shuffled and sorted inputs (window
    and reference) must give the same report, with late labels and missing rows."""
    rng = np.random.default_rng(10)

    def rows(n: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = rng.normal(shift, 1.0, n)
        p = np.round(1.0 / (1.0 + np.exp(-1.3 * x)), 3)
        y = (rng.random(n) < p).astype(np.float64)
        return p, y, (p >= 0.4).astype(np.float64)

    rp, ry, rpred = rows(20_000, 0.0)
    cp, cy, cpred = rows(3000, 0.6)
    cy[rng.random(3000) < 0.3] = np.nan  # labels not arrived yet
    cp[:5] = np.nan  # rows without a score
    ref = ClassificationReference.fit(ry, rp, reference_pred=rpred)
    order = np.argsort(rp)
    ref_sorted = ClassificationReference.fit(ry[order], rp[order], reference_pred=rpred[order])
    assert ref.reference == pytest.approx(ref_sorted.reference, rel=1e-10)
    np.testing.assert_allclose(ref.calibrator.maps[0].y, ref_sorted.calibrator.maps[0].y)
    a = ref.evaluate(cp, current_pred=cpred, current_y=cy).to_dict()
    perm = rng.permutation(3000)
    b = ref.evaluate(cp[perm], current_pred=cpred[perm], current_y=cy[perm]).to_dict()
    assert a["rows"] == b["rows"] == 2995
    assert a["labelled_rows"] == b["labelled_rows"]
    assert a["notes"] == b["notes"]
    assert a["concept_drift"] == b["concept_drift"]
    for part in ("estimated", "realized"):
        for m, e in a[part].items():
            for key in ("value", "lower", "upper"):
                assert e[key] == pytest.approx(b[part][m][key], rel=1e-9, abs=1e-12), (part, m)


@pytest.mark.parametrize("k", [2, 4])
def test_auc_value_equals_the_realized_auc_and_the_pair_count(k: int) -> None:
    """The reference's AUC without DeLong's influences: the same value as realized_auc,
    and (binary) the share of (positive, negative) pairs ranked right, ties half."""
    from modelmonitor.core.stats.performance.auc import auc_value, macro_auc_value

    rng = np.random.default_rng(11)
    proba = np.round(rng.dirichlet(np.ones(k), 1200), 2)  # ties
    t_idx = rng.integers(0, k, 1200).astype(np.intp)
    if k == 4:
        t_idx[t_idx == 2] = 0  # a class absent from the labels: left out of the mean
    pos = 1 if k == 2 else None
    full, _ = realized_auc(t_idx, proba, pos, 1.96)
    assert macro_auc_value(t_idx, proba, pos) == pytest.approx(full.value, rel=REL)
    if k == 2:
        s1, s0 = proba[t_idx == 1, 1], proba[t_idx == 0, 1]
        pairs = (s1[:, None] > s0[None, :]).mean() + 0.5 * (s1[:, None] == s0[None, :]).mean()
        assert auc_value(t_idx == 1, proba[:, 1]) == pytest.approx(pairs, rel=REL)
    assert auc_value(np.zeros(5, dtype=bool), np.arange(5.0)) is None


@pytest.mark.parametrize("n", [1, 2, 7, 3000])
def test_isotonic_values_equal_scipys_isotonic_regression(n: int) -> None:
    """The compiled routine loaded from its file against scipy's public function."""
    from scipy.optimize import isotonic_regression

    from modelmonitor.core.stats.performance.calibration import isotonic_values

    rng = np.random.default_rng(12)
    y = np.round(rng.random(n) + np.linspace(0, 0.3, n), 1)  # ties and violators
    w = rng.integers(1, 6, n).astype(np.float64)
    expect = isotonic_regression(y, weights=w, increasing=True).x
    y_before, w_before = y.copy(), w.copy()
    np.testing.assert_allclose(isotonic_values(y, w), expect, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(y, y_before)  # the inputs are not pooled in place
    np.testing.assert_array_equal(w, w_before)


def test_isotonic_values_fall_back_to_scipy_optimize(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from modelmonitor.core.stats.performance import calibration

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    fallback = calibration._load_pava()
    assert fallback is calibration._scipy_isotonic
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(fallback(y, np.ones(5)), [0.0, 0.5, 0.5, 1.0, 1.0])


def test_estimating_performance_does_not_import_scipy_optimize() -> None:
    """scipy.optimize costs about 0.3 s of CPU to import; a fit and an estimate need only
    its compiled pool-adjacent-violators routine."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from modelmonitor.core.stats.performance import classification_performance\n"
        "rng = np.random.default_rng(0)\n"
        "p = rng.random(2000)\n"
        "y = (rng.random(2000) < p).astype(int)\n"
        "r = classification_performance(y, p, p[:500], current_y=y[:500])\n"
        "assert r.estimated is not None\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy.optimize')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
