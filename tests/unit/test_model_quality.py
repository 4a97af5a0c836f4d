"""Model quality metrics against scikit-learn (a dev dependency only).

Expected values come from scikit-learn 1.9.1 on the same inputs. Tolerance: relative
1e-12 (both compute the same closed forms in float64; ROC AUC by the trapezoid rule on
the ROC curve there, by the rank statistic here, which agree exactly up to rounding).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from modelmonitor.core.dataset import CategoricalColumn
from modelmonitor.core.stats.model_quality import (
    average_ranks,
    classification_quality,
    regression_quality,
    roc_auc_binary,
)

REL = 1e-12


def _binary_case(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    # informative scores, rounded so that ties occur
    score = np.clip(np.round(0.3 * y + rng.uniform(0, 0.7, size=n), 2), 0, 1)
    return y, score


@pytest.mark.parametrize(("seed", "n"), [(0, 50), (1, 500), (2, 5000), (3, 7)])
def test_binary_matches_sklearn(seed: int, n: int) -> None:
    y, score = _binary_case(seed, n)
    pred = (score >= 0.5).astype(int)
    q = classification_quality(y, pred, proba=score)
    assert q.task == "binary"
    assert q.positive_label == 1
    assert q["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred), rel=REL)
    kw = {"zero_division": 0}
    assert q["precision"].value == pytest.approx(skm.precision_score(y, pred, **kw), rel=REL)
    assert q["recall"].value == pytest.approx(skm.recall_score(y, pred, **kw), rel=REL)
    assert q["f1"].value == pytest.approx(skm.f1_score(y, pred, **kw), rel=REL)
    if len(set(y.tolist())) == 2:
        assert q["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, score), rel=REL)
    assert q["log_loss"].value == pytest.approx(
        skm.log_loss(y, np.column_stack([1 - score, score]), labels=[0, 1]), rel=REL
    )


def test_binary_text_labels_and_positive_label() -> None:
    y = np.array(["no", "yes", "yes", "no", "yes", "no"])
    pred = np.array(["no", "yes", "no", "no", "yes", "yes"])
    q = classification_quality(y, pred, positive_label="no")
    assert q.positive_label == "no"
    assert q["precision"].value == pytest.approx(
        skm.precision_score(y, pred, pos_label="no"), rel=REL
    )
    assert q["recall"].value == pytest.approx(skm.recall_score(y, pred, pos_label="no"), rel=REL)
    default = classification_quality(y, pred)
    assert default.positive_label == "yes"  # the last class in sorted order


def test_binary_predictions_from_probabilities() -> None:
    y, score = _binary_case(5, 300)
    q = classification_quality(y, proba=score)
    assert q["accuracy"].value == pytest.approx(
        skm.accuracy_score(y, (score >= 0.5).astype(int)), rel=REL
    )


@pytest.mark.parametrize(("seed", "k", "n"), [(0, 3, 200), (1, 4, 2000), (2, 5, 60)])
def test_multiclass_matches_sklearn(seed: int, k: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k  # every class present
    rng.shuffle(y)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    q = classification_quality(y, pred, proba=proba)
    assert q.task == "multiclass"
    assert q.average == "macro"
    kw = {"average": "macro", "zero_division": 0}
    assert q["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred), rel=REL)
    assert q["precision"].value == pytest.approx(skm.precision_score(y, pred, **kw), rel=REL)
    assert q["recall"].value == pytest.approx(skm.recall_score(y, pred, **kw), rel=REL)
    assert q["f1"].value == pytest.approx(skm.f1_score(y, pred, **kw), rel=REL)
    assert q["roc_auc"].value == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"), rel=REL
    )
    assert q["log_loss"].value == pytest.approx(skm.log_loss(y, proba), rel=REL)


def test_multiclass_class_never_predicted_is_zero_precision_with_note() -> None:
    y = np.array(["a", "b", "c", "a", "b", "c"])
    pred = np.array(["a", "b", "b", "a", "b", "a"])
    q = classification_quality(y, pred)
    expected = skm.precision_score(y, pred, average="macro", zero_division=0)
    assert q["precision"].value == pytest.approx(expected, rel=REL)
    assert any("never predicted" in n for n in q.notes)


def test_categorical_columns_and_missing_rows() -> None:
    y = CategoricalColumn.from_values(["a", "b", None, "a", "b"])
    pred = CategoricalColumn.from_values(["a", "a", "b", None, "b"])
    q = classification_quality(y, pred)
    assert q.rows == 3
    assert q.ignored_rows == 2
    assert q["accuracy"].value == pytest.approx(2 / 3)
    assert any("ignored" in n for n in q.notes)


def test_roc_auc_single_class_is_undefined() -> None:
    q = classification_quality([1, 1, 1], [1, 0, 1], proba=[0.9, 0.2, 0.8], labels=[0, 1])
    assert q["roc_auc"].value is None
    assert any("single class" in n for n in q.notes)
    assert math.isnan(roc_auc_binary(np.array([True, True]), np.array([0.1, 0.2])))


def test_change_against_reference() -> None:
    y, score = _binary_case(7, 400)
    ref = classification_quality(y, proba=score)
    worse = classification_quality(y, proba=np.clip(score + 0.2, 0, 1), reference=ref)
    acc = worse["accuracy"]
    assert acc.reference == ref["accuracy"].value
    assert acc.change == pytest.approx(acc.value - ref["accuracy"].value)
    partial = classification_quality(y, proba=score, reference={"accuracy": 0.5})
    assert partial["f1"].change is None
    assert partial["accuracy"].change == pytest.approx(partial["accuracy"].value - 0.5)


def test_average_ranks_match_tie_averaging() -> None:
    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    np.testing.assert_array_equal(average_ranks(x), [5.0, 1.5, 5.0, 3.0, 5.0, 1.5])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, size=1000)
    y[:10] = 0.0  # MAPE ignores these
    pred = y + rng.normal(0, 1, size=1000)
    q = regression_quality(y, pred)
    assert q["mae"].value == pytest.approx(skm.mean_absolute_error(y, pred), rel=REL)
    assert q["rmse"].value == pytest.approx(math.sqrt(skm.mean_squared_error(y, pred)), rel=REL)
    assert q["r2"].value == pytest.approx(skm.r2_score(y, pred), rel=REL)
    nz = y != 0
    assert q["mape"].value == pytest.approx(
        skm.mean_absolute_percentage_error(y[nz], pred[nz]), rel=REL
    )
    assert any("ignores 10 row(s)" in n for n in q.notes)


def test_regression_degenerate_and_non_finite() -> None:
    q = regression_quality([2.0, 2.0, np.nan, 2.0], [1.0, 3.0, 1.0, np.inf])
    assert q.rows == 2
    assert q.ignored_rows == 2
    assert q["r2"].value is None
    assert q["mae"].value == pytest.approx(1.0)
    zeros = regression_quality([0.0, 0.0], [1.0, 2.0])
    assert zeros["mape"].value is None


def test_results_are_json_serialisable() -> None:
    y, score = _binary_case(9, 100)
    for q in (
        classification_quality(y, proba=score, reference={"accuracy": 0.7}),
        regression_quality([1.0, 2.0, 3.0], [1.5, 2.0, 2.0], reference={"mae": 0.1}),
    ):
        back = json.loads(json.dumps(q.to_dict(), allow_nan=False))
        assert back["metrics"][0]["name"] in {"accuracy", "mae"}


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="y_pred, proba"):
        classification_quality([0, 1])
    with pytest.raises(ValueError, match="columns"):
        classification_quality([0, 1, 2], proba=np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="outside the classes"):
        classification_quality([0, 1, 2], [0, 1, 2], labels=[0, 1])
    with pytest.raises(ValueError, match="values"):
        regression_quality([1.0, 2.0], [1.0])
