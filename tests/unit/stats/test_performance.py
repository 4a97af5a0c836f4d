"""Realized and estimated (CBPE) model performance, and concept drift.

Known answers: metric values from scikit-learn 1.9.1 on the same inputs (relative 1e-12),
the isotonic map from scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` (1e-12),
Wilson's interval for 0 of 10 at 95% (0, 0.2775: Brown, Cai and DasGupta 2001, table 1
style examples; Newcombe 1998), DeLong's variance from its textbook O(n^2) definition, and
the expected AUC from the brute-force double sum over pairs. Coverage and false-alarm rates
are measured by simulation (seeded) with the bands stated at each test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.isotonic import IsotonicRegression

from modelmonitor.core.stats.performance import (
    ClassificationReference,
    classification_performance,
    regression_performance,
)
from modelmonitor.core.stats.performance.auc import expected_auc, realized_auc
from modelmonitor.core.stats.performance.calibration import check_calibration, fit_isotonic
from modelmonitor.core.stats.performance.cbpe import estimate_classification
from modelmonitor.core.stats.performance.intervals import wilson, z_value

REL = 1e-12
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _binary(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[np.ndarray, ...]:
    """Labels from a logistic truth; scores a monotone but miscalibrated function of it."""
    x = rng.normal(shift, 1.0, n)
    y = (rng.random(n) < _sigmoid(2.0 * x)).astype(np.int64)
    score = _sigmoid(1.2 * x + 0.3)
    return y, score


def _multiclass(rng: np.random.Generator, n: int, k: int = 3, shift: float = 0.0):
    x = rng.normal(0.0, 1.0, (n, k))
    x[:, 0] += shift
    p = np.exp(1.5 * x)
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    s = np.exp(x)
    return y, s / s.sum(axis=1, keepdims=True)


# --- realized: values equal scikit-learn's ------------------------------------------------


def test_realized_binary_equals_sklearn() -> None:
    rng = np.random.default_rng(1)
    ry, rs = _binary(rng, 3000)
    cy, cs = _binary(rng, 800, 0.5)
    r = classification_performance(ry, rs, cs, current_y=cy)
    pred = (cs >= 0.5).astype(int)
    assert r.realized is not None
    got = {m: r.realized[m].value for m in METRICS}
    want = {
        "accuracy": skm.accuracy_score(cy, pred),
        "precision": skm.precision_score(cy, pred),
        "recall": skm.recall_score(cy, pred),
        "f1": skm.f1_score(cy, pred),
        "roc_auc": skm.roc_auc_score(cy, cs),
    }
    for m in METRICS:
        assert got[m] == pytest.approx(want[m], rel=REL), m
        e = r.realized[m]
        assert e.lower is not None
        assert e.upper is not None
        assert 0.0 <= e.lower <= got[m] <= e.upper <= 1.0
    ref_pred = (rs >= 0.5).astype(int)
    assert r.reference["accuracy"] == pytest.approx(skm.accuracy_score(ry, ref_pred), rel=REL)
    assert r.reference["roc_auc"] == pytest.approx(skm.roc_auc_score(ry, rs), rel=REL)


def test_realized_multiclass_macro_equals_sklearn_with_text_labels_and_predictions() -> None:
    rng = np.random.default_rng(2)
    names = np.array(["ant", "bee", "cat"])
    ry, rs = _multiclass(rng, 3000)
    cy, cs = _multiclass(rng, 700, shift=0.5)
    pred = names[(cs + rng.normal(0, 0.05, cs.shape)).argmax(axis=1)]  # a separate prediction
    r = classification_performance(
        names[ry], rs, cs, current_y=names[cy], current_pred=pred, reference_pred=names[ry]
    )
    assert r.task == "multiclass"
    assert r.labels == ("ant", "bee", "cat")
    assert r.realized is not None
    t = names[cy]
    assert r.realized["accuracy"].value == pytest.approx(skm.accuracy_score(t, pred), rel=REL)
    for m, f in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert r.realized[m].value == pytest.approx(f(t, pred, average="macro"), rel=REL), m
    auc = skm.roc_auc_score(cy, cs, multi_class="ovr", average="macro")
    assert r.realized["roc_auc"].value == pytest.approx(auc, rel=REL)
    assert r.reference["accuracy"] == 1.0  # the reference's predictions are its labels


def test_realized_regression_equals_sklearn_and_is_not_estimated() -> None:
    rng = np.random.default_rng(3)
    ry = rng.normal(10, 3, 2000)
    rp = ry + rng.normal(0, 1, 2000)
    cy = rng.normal(11, 3, 500)
    cy[:5] = 0.0  # MAPE leaves zero targets out
    cp = cy + rng.normal(0.3, 1.2, 500)
    r = regression_performance(ry, rp, cp, current_y=cy)
    assert r.realized is not None
    assert r.estimated is None
    assert "not supported for regression" in r.notes[0]
    assert r.realized["mae"].value == pytest.approx(skm.mean_absolute_error(cy, cp), rel=REL)
    assert r.realized["rmse"].value == pytest.approx(
        math.sqrt(skm.mean_squared_error(cy, cp)), rel=REL
    )
    nz = cy != 0
    mape = skm.mean_absolute_percentage_error(cy[nz], cp[nz])
    assert r.realized["mape"].value == pytest.approx(mape, rel=REL)
    for m in ("mae", "rmse", "mape"):
        e = r.realized[m]
        assert e.lower is not None
        assert e.upper is not None
        assert 0 <= e.lower < e.value < e.upper
    d = r.to_dict()
    assert d["estimated"] is None
    assert d["concept_drift"] is False


# --- intervals: known answers --------------------------------------------------------------


def test_wilson_known_answers() -> None:
    z = z_value(0.95)
    assert z == pytest.approx(1.959963984540054, rel=1e-12)
    e = wilson(0, 10, z)
    assert e.lower == 0.0
    assert e.upper == pytest.approx(0.2775, abs=5e-5)  # Wilson 0/10, 95%
    e = wilson(81, 263, z)  # Newcombe (1998), example (a): 0.2553 to 0.3662
    assert e.lower == pytest.approx(0.2553, abs=5e-5)
    assert e.upper == pytest.approx(0.3662, abs=5e-5)


def test_delong_variance_matches_the_textbook_definition() -> None:
    rng = np.random.default_rng(4)
    n = 300
    y = rng.integers(0, 2, n)
    s = np.round(y * 0.8 + rng.normal(0, 1, n), 1)  # rounded: ties
    est, _ = realized_auc(y.astype(np.intp), np.column_stack([1 - s, s]), 1, 1.0)
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    # DeLong et al. (1988): S10/n1 + S01/n0; the influence form divides by n1, n0 instead
    # of n1 - 1, n0 - 1
    var = v10.var() / pos.size + v01.var() / neg.size
    assert est.value == pytest.approx(auc, rel=REL)
    assert est.std == pytest.approx(math.sqrt(var), rel=1e-9)


def test_expected_auc_is_the_expected_roc_curve_area() -> None:
    rng = np.random.default_rng(5)
    n = 200
    s = np.round(rng.random(n), 2)
    p = np.clip(s + rng.normal(0, 0.1, n), 0.01, 0.99)
    est, _ = expected_auc(np.column_stack([1 - p, p]), np.column_stack([1 - s, s]), 1, 1.96)
    gt = (s[:, None] > s[None, :]) + 0.5 * (s[:, None] == s[None, :])
    w = p[:, None] * (1 - p[None, :])
    np.fill_diagonal(w, 0.0)
    brute = (w * gt).sum() / (p.sum() * (n - p.sum()))
    assert est.value == pytest.approx(brute, rel=1e-12)


def test_estimated_accuracy_std_is_the_poisson_binomial_one() -> None:
    rng = np.random.default_rng(6)
    p = rng.random(500)
    cal = np.column_stack([1 - p, p])
    pred = (rng.random(500) < 0.5).astype(np.intp)
    est, _ = estimate_classification(cal, cal, pred, 1, 1.96)
    q = np.where(pred == 1, p, 1 - p)
    assert est["accuracy"].value == pytest.approx(q.mean(), rel=REL)
    assert est["accuracy"].std == pytest.approx(math.sqrt((q * (1 - q)).sum()) / 500, rel=1e-8)
    tp = p[pred == 1]
    assert est["precision"].value == pytest.approx(tp.mean(), rel=REL)
    assert est["precision"].std == pytest.approx(
        math.sqrt((tp * (1 - tp)).sum()) / tp.size, rel=1e-8
    )


# --- calibration ---------------------------------------------------------------------------


def test_isotonic_map_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(7)
    s = np.round(rng.random(2000), 2)
    y = (rng.random(2000) < s**2).astype(float)
    ours = fit_isotonic(s, y)
    theirs = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, y)
    probe = np.concatenate([np.linspace(-0.1, 1.1, 500), s])
    np.testing.assert_allclose(ours(probe), theirs.predict(probe), rtol=0, atol=1e-12)


def test_calibration_check_warns_on_badly_calibrated_scores() -> None:
    rng = np.random.default_rng(8)
    s = rng.random(5000)
    # U-shaped truth: the score is no probability; isotonic pools it into a plateau
    y = (rng.random(5000) < np.abs(2 * s - 1)).astype(np.intp)
    check = check_calibration(y, np.column_stack([1 - s, s]), 1)
    assert check.raw_miscalibrated
    assert check.warning is not None
    assert "badly calibrated on the reference" in check.warning
    # monotone but miscalibrated: the warning says the estimates rest on recalibration
    y2, s2 = _binary(rng, 5000)
    r = classification_performance(y2, s2, s2[:500])
    assert r.calibration is not None
    assert not r.calibration.well_calibrated
    assert any("recalibrated on the reference" in n for n in r.notes)
    # calibrated scores: no warning
    p = rng.random(5000)
    y3 = (rng.random(5000) < p).astype(np.intp)
    c3 = check_calibration(y3, np.column_stack([1 - p, p]), 1)
    assert c3.well_calibrated
    assert not c3.raw_miscalibrated


def test_calibration_check_stays_quiet_on_calibrated_scores_of_any_size() -> None:
    flagged = 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        n = (200, 2000, 20000)[seed % 3]
        s = rng.random(n)
        y = (rng.random(n) < s).astype(np.intp)
        flagged += not check_calibration(y, np.column_stack([1 - s, s]), 1).well_calibrated
    assert flagged <= 1


def test_a_small_reference_gets_a_note() -> None:
    rng = np.random.default_rng(9)
    y, s = _binary(rng, 300)
    r = classification_performance(y, s, s[:50])
    assert any("fitted on 300 reference row(s)" in n for n in r.notes)


# --- estimation: coverage and concept drift ------------------------------------------------


def _coverage(reps: int, k: int, seed: int) -> tuple[dict[str, float], float]:
    """Share of windows whose realized value lies in the estimate's 95% interval, labels
    drawn from the calibrated probabilities (the estimate's own assumption), under a
    covariate shift; and the share flagged as concept drift (a false alarm here)."""
    rng = np.random.default_rng(seed)
    if k == 2:
        ry, rs = _binary(rng, 20000)
        rs2 = np.column_stack([1 - rs, rs])
    else:
        ry, rs2 = _multiclass(rng, 20000, k)
    fitted = ClassificationReference.fit(ry, rs if k == 2 else rs2)
    cal = fitted.calibrator
    hits = dict.fromkeys(METRICS, 0)
    alarms = 0
    for _ in range(reps):
        if k == 2:
            _, cs = _binary(rng, 600, 0.6)
            scores = np.column_stack([1 - cs, cs])
        else:
            _, scores = _multiclass(rng, 600, k, shift=0.6)
            cs = scores
        p = cal(scores)
        cy = (rng.random(600)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
        r = fitted.evaluate(cs, current_y=cy)
        assert r.estimated is not None
        assert r.realized is not None
        for m in METRICS:
            value = r.realized[m].value
            assert value is not None
            hits[m] += r.estimated[m].contains(value)
        alarms += r.concept_drift
    return {m: h / reps for m, h in hits.items()}, alarms / reps


@pytest.mark.parametrize("k", [2, 3])
def test_estimate_covers_the_realized_value_about_95_percent(k: int) -> None:
    coverage, false_alarms = _coverage(400, k, seed=10 + k)
    # 400 repetitions: a true 95% gives 92.6-97.1% in 99% of runs of this test
    for m, c in coverage.items():
        assert 0.92 <= c <= 0.975, (m, c)
    assert false_alarms <= 0.08


def test_concept_drift_is_detected_when_labels_change_given_the_scores() -> None:
    rng = np.random.default_rng(20)
    ry, rs = _binary(rng, 20000)
    x = rng.normal(0.3, 1.0, 2000)
    cs = _sigmoid(1.2 * x + 0.3)
    # the model is wrong on a subgroup now: for x > 1 the label flips half of the time
    p_true = np.where(x > 1, 0.5, _sigmoid(2.0 * x))
    cy = (rng.random(2000) < p_true).astype(np.int64)
    r = classification_performance(ry, rs, cs, current_y=cy)
    assert r.concept_drift
    assert "accuracy" in r.concept_drift_metrics
    assert r.to_dict()["concept_drift"] is True


def test_window_without_labels_has_no_realized_and_late_labels_compare_like_with_like() -> None:
    rng = np.random.default_rng(21)
    ry, rs = _binary(rng, 5000)
    cy, cs = _binary(rng, 1000, 0.4)
    r = classification_performance(ry, rs, cs)
    d = r.to_dict()
    assert "realized" not in d
    assert set(d["estimated"]) == set(METRICS)
    for e in d["estimated"].values():
        assert set(e) == {"value", "lower", "upper"}
        assert e["lower"] <= e["value"] <= e["upper"]
    assert d["concept_drift"] is False
    late = cy.astype(float)
    late[600:] = np.nan  # 400 labels not arrived yet
    r2 = classification_performance(ry, rs, cs, current_y=late)
    assert r2.labelled_rows == 600
    assert r2.rows == 1000
    assert r2.realized is not None
    assert r2.realized["accuracy"].value == pytest.approx(
        skm.accuracy_score(cy[:600], (cs[:600] >= 0.5).astype(int)), rel=REL
    )
    assert r2.estimated == r.estimated  # the estimate is of the whole window
    assert any("without a label yet" in n for n in r2.notes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"current_proba": np.zeros((10, 3))}, "same columns"),
        ({"reference_y": np.zeros(100)}, "at least two classes"),
        ({"current_y": np.zeros(5)}, "current labels have 5 rows"),
    ],
)
def test_bad_input_is_a_value_error(kwargs: dict[str, object], message: str) -> None:
    rng = np.random.default_rng(0)
    ry, rs = _binary(rng, 100)
    args: dict[str, object] = {"reference_y": ry, "reference_proba": rs, "current_proba": rs[:10]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        classification_performance(**args)  # type: ignore[arg-type]


def test_degenerate_windows_never_crash() -> None:
    rng = np.random.default_rng(30)
    ry, rs = _binary(rng, 2000)
    ref = ClassificationReference.fit(ry, rs)
    one = ref.evaluate(rs[:1], current_y=ry[:1])
    assert one.estimated is not None
    assert one.estimated["roc_auc"].value is None
    assert any("concept drift not checked" in n for n in one.notes)
    assert not one.concept_drift
    holes = ref.evaluate(np.r_[rs[:50], [np.nan, np.inf]])
    assert holes.rows == 50
    assert any("2 row(s) with a missing score" in n for n in holes.notes)
    single_class = ref.evaluate(rs[:100], current_y=np.ones(100))
    assert single_class.realized is not None
    assert single_class.realized["roc_auc"].value is None
    assert any("absent from the labels" in n for n in single_class.notes)
    with pytest.raises(ValueError, match="outside the classes"):
        ref.evaluate(rs[:10], current_y=np.r_[ry[:9], [7]])


def test_midranks_equal_model_qualitys_average_ranks() -> None:
    from modelmonitor.core.stats.model_quality import average_ranks
    from modelmonitor.core.stats.performance.auc import midranks

    x = np.round(np.random.default_rng(31).random(5000), 2)  # many ties
    np.testing.assert_array_equal(midranks(x), average_ranks(x))


@pytest.mark.parametrize("pos", [None, 1])
def test_closed_form_variances_equal_the_full_covariance_delta_method(pos: int | None) -> None:
    """The closed forms (O(K^2) realized, O(n K) estimated) against the textbook route:
    a numerical gradient over the K*K cells and the full K^2 x K^2 covariance."""
    from modelmonitor.core.stats.performance.confusion import (
        count_metrics,
        expected_confusion,
        expected_var,
        multinomial_var,
    )

    rng = np.random.default_rng(40)
    k = 2 if pos is not None else 4
    n = 400
    proba = rng.dirichlet(np.ones(k), n)
    pred = rng.integers(0, k, n).astype(np.intp)
    e = expected_confusion(proba, pred, k)
    cm = rng.integers(1, 60, (k, k)).astype(float)

    def values(c: np.ndarray) -> dict[str, float]:
        return {m: v for m, (v, _) in count_metrics(c, pos).items()}

    h = 1e-5
    full_e = np.zeros((k * k, k * k))
    for c in range(k):
        rows = proba[pred == c]
        idx = np.arange(k) * k + c
        full_e[np.ix_(idx, idx)] = np.diag(rows.sum(axis=0)) - rows.T @ rows
    pi = cm.ravel() / cm.sum()
    full_m = cm.sum() * (np.diag(pi) - np.outer(pi, pi))
    for m, (_, g) in count_metrics(cm, pos).items():
        numeric = np.array(
            [
                (values(cm + h * np.eye(k * k)[j].reshape(k, k))[m]
                 - values(cm - h * np.eye(k * k)[j].reshape(k, k))[m]) / (2 * h)
                for j in range(k * k)
            ]
        )  # fmt: skip
        np.testing.assert_allclose(g.ravel(), numeric, atol=1e-7)
        assert multinomial_var(cm, g) == pytest.approx(numeric @ full_m @ numeric, rel=1e-6)
    for m, (_, g) in count_metrics(e, pos).items():
        gv = g.ravel()
        assert expected_var(proba, pred, e, g) == pytest.approx(gv @ full_e @ gv, rel=1e-9), m


def test_hundreds_of_classes_stay_cheap() -> None:
    """A window with 300 text classes: no K^2 x K^2 matrix (it would be 65 GB)."""
    from modelmonitor.core.stats.performance import labelled_classification_performance

    rng = np.random.default_rng(41)
    names = np.array([f"c{i:03d}" for i in range(300)])
    y = names[rng.integers(0, 300, 20000)]
    pred = np.where(rng.random(20000) < 0.7, y, names[rng.integers(0, 300, 20000)])
    r = labelled_classification_performance(y, pred, pred[:5000], y[:5000])
    assert r.realized is not None
    assert r.realized["f1"].value == pytest.approx(
        skm.f1_score(y[:5000], pred[:5000], average="macro"), rel=1e-12
    )
    proba = rng.dirichlet(np.ones(300), 3000)
    labels = (rng.random(3000)[:, None] > np.cumsum(proba, axis=1)).sum(axis=1)
    est = classification_performance(labels[:2000], proba[:2000], proba[2000:])
    assert est.estimated is not None
    assert est.estimated["f1"].lower is not None


def test_late_labels_join_by_id_keeps_the_last_label_and_counts_the_rest() -> None:
    from modelmonitor.core.stats.performance.late_labels import join_labels

    window = np.array(["a", "b", "c", "a", None, float("nan")], dtype=object)
    ids = np.array(["b", "a", "zz", "b", None], dtype=object)
    j = join_labels(window, ids, np.array([1.0, 0.0, 1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(j.labels, [0.0, 0.0, np.nan, 0.0, np.nan, np.nan])
    assert (j.matched, j.unmatched_labels, j.duplicate_ids, j.missing_ids) == (3, 1, 1, 1)
    assert len(j.notes()) == 3
    text = join_labels(np.array(["7", "8"]), np.array(["8"]), np.array(["cat"], dtype=object))
    assert text.labels.tolist() == [None, "cat"]
    empty = join_labels(np.array(["7"]), np.array([], dtype=str), np.array([], dtype=float))
    assert empty.matched == 0
    assert np.isnan(empty.labels[0])
