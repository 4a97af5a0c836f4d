"""Model quality when labels are known: classification and regression metrics.

Every metric is plain numpy, vectorised, and carries its change against a reference value
(the same metric on the reference data, e.g. from a validation run) when one is given.

Classification (labels may be numbers or text; the class order is the sorted set of
labels seen in ``y_true`` and ``y_pred``, or ``labels`` when given):

* binary (two classes): accuracy; precision, recall and F1 of the positive class (the
  last class in order unless ``positive_label`` names it); ROC AUC from the scores of the
  positive class (the Mann-Whitney rank statistic, ties counted half); log loss;
* multi-class: accuracy; precision, recall and F1 averaged over classes with equal weight
  (macro); ROC AUC one-vs-rest, macro-averaged, from a probability matrix whose columns
  follow the class order; log loss.

A ratio with a zero denominator (precision of a class never predicted) is 0, as is
customary; undefined metrics (ROC AUC when ``y_true`` has one class, R2 of a constant
target) are None, with a note saying why. Probabilities are clipped to [eps, 1 - eps]
(float64 machine epsilon) before the logarithm of log loss.

Regression: MAE, RMSE, MAPE and R2. MAPE ignores rows whose target is zero (the ratio is
undefined there) and says how many it ignored. Rows with a missing or non-finite target,
prediction or probability are dropped first, and a note counts them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from modelmonitor.core.dataset import CategoricalColumn
from modelmonitor.core.stats.label_encoding import encode_labels as _encode
from modelmonitor.core.stats.label_encoding import json_label as _py
from modelmonitor.core.stats.label_encoding import labels_array as _labels_array
from modelmonitor.core.stats.label_encoding import missing_mask as _missing_mask

Task: TypeAlias = Literal["binary", "multiclass", "regression"]
ReferenceValues: TypeAlias = "Mapping[str, float | None] | ModelQuality | None"

HIGHER_IS_BETTER = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
    "mape": False,
    "r2": True,
}


@dataclass(frozen=True)
class Metric:
    """One metric's value, and its change against the reference's value when known."""

    name: str
    value: float | None
    reference: float | None = None

    @property
    def change(self) -> float | None:
        if self.value is None or self.reference is None:
            return None
        return self.value - self.reference

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "reference": self.reference,
            "change": self.change,
            "higher_is_better": self.higher_is_better,
        }


@dataclass(frozen=True)
class ModelQuality:
    """Metrics of one task on one data set, with notes on anything left out or undefined."""

    task: Task
    rows: int
    """Rows the metrics were computed on (after dropping unusable rows)."""
    ignored_rows: int
    metrics: tuple[Metric, ...]
    labels: tuple[str | float, ...] = ()
    positive_label: str | float | None = None
    average: Literal["binary", "macro"] | None = None
    notes: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def values(self) -> dict[str, float | None]:
        """Metric name -> value: what a later run passes as its ``reference``."""
        return {m.name: m.value for m in self.metrics}

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "rows": self.rows,
            "ignored_rows": self.ignored_rows,
            "labels": list(self.labels),
            "positive_label": self.positive_label,
            "average": self.average,
            "metrics": [m.to_dict() for m in self.metrics],
            "notes": list(self.notes),
        }


# --- helpers ---------------------------------------------------------------------------


def _common_labels(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays in one comparable dtype: numbers stay numbers, else text."""
    if t.dtype.kind in "biuf" and p.dtype.kind in "biuf":
        return t.astype(np.float64), p.astype(np.float64)
    return t.astype(str), p.astype(str)


def _reference_values(reference: ReferenceValues) -> Mapping[str, float | None]:
    if reference is None:
        return {}
    if isinstance(reference, ModelQuality):
        return reference.values()
    return reference


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


def average_ranks(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based ranks of ``x`` with ties given the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = xs.size
    starts = np.flatnonzero(np.concatenate(([True], xs[1:] != xs[:-1])))
    ends = np.append(starts[1:], n)  # exclusive
    group_rank = (starts + ends + 1) / 2.0  # mean of start+1 .. end
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def roc_auc_binary(positive: npt.NDArray[np.bool_], score: npt.NDArray[np.float64]) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties 1/2.

    The Mann-Whitney U statistic of the positives' ranks, divided by n_pos * n_neg;
    NaN when either class is absent.
    """
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(score)
    u = float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


# --- classification ----------------------------------------------------------------------


def classification_quality(
    y_true: npt.ArrayLike | CategoricalColumn,
    y_pred: npt.ArrayLike | CategoricalColumn | None = None,
    *,
    proba: npt.ArrayLike | None = None,
    labels: Sequence[str | float] | None = None,
    positive_label: str | float | None = None,
    reference: ReferenceValues = None,
) -> ModelQuality:
    """Classification metrics (see the module docstring).

    ``proba``: for two classes, the positive class's probability (1-D) or an (n, 2)
    matrix; for more, an (n, k) matrix whose columns follow the class order. Without
    ``y_pred`` the predicted class is the most probable one (binary: probability >= 0.5).
    Without ``proba``, ROC AUC and log loss are left out.
    """
    t_raw = _labels_array(y_true).ravel()
    prob = None if proba is None else np.asarray(proba, dtype=np.float64)
    if prob is not None and prob.ndim not in (1, 2):
        raise ValueError("proba must be 1-D (binary) or 2-D (n, classes)")
    if prob is not None and prob.shape[0] != t_raw.size:
        raise ValueError(f"proba has {prob.shape[0]} rows, y_true has {t_raw.size}")
    if y_pred is None and prob is None:
        raise ValueError("give y_pred, proba, or both")
    p_raw = None if y_pred is None else _labels_array(y_pred).ravel()
    if p_raw is not None and p_raw.size != t_raw.size:
        raise ValueError(f"y_pred has {p_raw.size} values, y_true has {t_raw.size}")

    drop = _missing_mask(t_raw)
    if p_raw is not None:
        drop |= _missing_mask(p_raw)
    if prob is not None:
        bad = ~np.isfinite(prob)
        drop |= bad if prob.ndim == 1 else bad.any(axis=1)
    notes: list[str] = []
    ignored = int(np.count_nonzero(drop))
    if ignored:
        notes.append(f"{ignored} row(s) with a missing or non-finite value ignored")
        keep = ~drop
        t_raw = t_raw[keep]
        p_raw = None if p_raw is None else p_raw[keep]
        prob = None if prob is None else prob[keep]
    if t_raw.size == 0:
        raise ValueError("no rows left to compute classification metrics on")

    # class order
    if labels is not None:
        classes = np.asarray(list(labels))
    else:
        if p_raw is not None:
            seen = np.concatenate(_common_labels(t_raw, p_raw))
        else:
            seen = t_raw.astype(np.float64) if t_raw.dtype.kind in "biuf" else t_raw.astype(str)
        classes = np.unique(seen)
        if prob is not None and prob.ndim == 2 and prob.shape[1] != classes.size:
            raise ValueError(
                f"proba has {prob.shape[1]} columns but {classes.size} classes were seen; "
                "pass labels= to name the columns' classes"
            )
    if classes.size < 2:
        raise ValueError(
            "classification needs at least two classes; pass labels= (e.g. [negative, positive])"
        )
    k = classes.size
    binary = k == 2
    if prob is not None and prob.ndim == 2 and prob.shape[1] != k:
        raise ValueError(f"proba has {prob.shape[1]} columns for {k} classes")
    if prob is not None and prob.ndim == 1 and not binary:
        raise ValueError("a 1-D proba is the positive class of a binary task; pass (n, k)")

    t_idx = _encode(t_raw, classes, "y_true")
    pos = k - 1
    if binary and positive_label is not None:
        where = np.flatnonzero(_encode(np.asarray([positive_label]), classes, "positive_label"))
        pos = int(where[0]) if where.size else 0
    if p_raw is not None:
        p_idx = _encode(p_raw, classes, "y_pred")
    else:
        assert prob is not None
        p_idx = np.where(prob >= 0.5, pos, 1 - pos) if prob.ndim == 1 else prob.argmax(axis=1)

    cm = np.bincount(t_idx * k + p_idx, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    pred_n = cm.sum(axis=0).astype(np.float64)
    true_n = cm.sum(axis=1).astype(np.float64)
    precision_c = np.divide(tp, pred_n, out=np.zeros(k), where=pred_n > 0)
    recall_c = np.divide(tp, true_n, out=np.zeros(k), where=true_n > 0)
    f1_den = pred_n + true_n
    f1_c = np.divide(2 * tp, f1_den, out=np.zeros(k), where=f1_den > 0)
    accuracy = float(tp.sum() / t_idx.size)
    if binary:
        precision, recall, f1 = float(precision_c[pos]), float(recall_c[pos]), float(f1_c[pos])
        if pred_n[pos] == 0:
            notes.append("precision set to 0: the positive class was never predicted")
    else:
        precision, recall, f1 = (float(v.mean()) for v in (precision_c, recall_c, f1_c))
        never = [str(_py(classes[i])) for i in np.flatnonzero(pred_n == 0)]
        if never:
            notes.append(f"precision 0 for class(es) never predicted: {', '.join(never)}")

    values: dict[str, float | None] = {
        "accuracy": accuracy,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
    if prob is not None:
        values["roc_auc"] = _roc_auc(t_idx, prob, k, pos, classes, notes)
        values["log_loss"] = _log_loss(t_idx, prob, k, pos)

    ref = _reference_values(reference)
    return ModelQuality(
        task="binary" if binary else "multiclass",
        rows=int(t_idx.size),
        ignored_rows=ignored,
        metrics=tuple(Metric(n, v, ref.get(n)) for n, v in values.items()),
        labels=tuple(_py(c) for c in classes),
        positive_label=_py(classes[pos]) if binary else None,
        average="binary" if binary else "macro",
        notes=tuple(notes),
    )


def _roc_auc(
    t_idx: np.ndarray, prob: np.ndarray, k: int, pos: int, classes: np.ndarray, notes: list[str]
) -> float | None:
    if k == 2:
        score = prob if prob.ndim == 1 else prob[:, pos]
        auc = roc_auc_binary(t_idx == pos, score)
        if math.isnan(auc):
            notes.append("roc_auc undefined: y_true has a single class")
            return None
        return auc
    aucs = np.array([roc_auc_binary(t_idx == c, prob[:, c]) for c in range(k)])
    undefined = np.isnan(aucs)
    if undefined.all():
        notes.append("roc_auc undefined: no class has both positives and negatives")
        return None
    if undefined.any():
        absent = ", ".join(str(_py(classes[i])) for i in np.flatnonzero(undefined))
        notes.append(f"roc_auc averaged without class(es) absent from y_true: {absent}")
    return float(aucs[~undefined].mean())


def _log_loss(t_idx: np.ndarray, prob: np.ndarray, k: int, pos: int) -> float:
    eps = float(np.finfo(np.float64).eps)
    if prob.ndim == 1:
        p_pos = np.clip(prob, eps, 1 - eps)
        p_true = np.where(t_idx == pos, p_pos, 1 - p_pos)
    else:
        p_true = np.clip(prob[np.arange(t_idx.size), t_idx], eps, 1 - eps)
    return float(-np.log(p_true).mean())


# --- regression ----------------------------------------------------------------------------


def regression_quality(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    reference: ReferenceValues = None,
) -> ModelQuality:
    """MAE, RMSE, MAPE (zero targets ignored) and R2 (see the module docstring)."""
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.size != p.size:
        raise ValueError(f"y_pred has {p.size} values, y_true has {t.size}")
    keep = np.isfinite(t) & np.isfinite(p)
    ignored = int(t.size - np.count_nonzero(keep))
    notes: list[str] = []
    if ignored:
        notes.append(f"{ignored} row(s) with a missing or non-finite value ignored")
        t, p = t[keep], p[keep]
    if t.size == 0:
        raise ValueError("no rows left to compute regression metrics on")
    err = p - t
    abs_err = np.abs(err)
    mae = float(abs_err.mean())
    rmse = math.sqrt(float(np.square(err).mean()))
    nonzero = t != 0
    zeros = int(t.size - np.count_nonzero(nonzero))
    if zeros:
        notes.append(f"mape ignores {zeros} row(s) whose target is 0")
    mape = float((abs_err[nonzero] / np.abs(t[nonzero])).mean()) if zeros < t.size else None
    if mape is None:
        notes.append("mape undefined: every target is 0")
    ss_tot = float(np.square(t - t.mean()).sum())
    if ss_tot > 0:
        r2: float | None = 1.0 - float(np.square(err).sum()) / ss_tot
    else:
        r2 = None
        notes.append("r2 undefined: the target is constant")
    values: dict[str, float | None] = {
        "mae": mae,
        "rmse": rmse,
        "mape": _finite_or_none(mape) if mape is not None else None,
        "r2": r2,
    }
    ref = _reference_values(reference)
    return ModelQuality(
        task="regression",
        rows=int(t.size),
        ignored_rows=ignored,
        metrics=tuple(Metric(n, v, ref.get(n)) for n, v in values.items()),
        notes=tuple(notes),
    )
