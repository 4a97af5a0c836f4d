"""Realized performance of one window (labels known), each metric with its interval.

Classification: accuracy, and binary precision and recall, are proportions with a fixed
denominator given the window (rows, predicted positives, actual positives): Wilson's
interval. F1 and the macro averages are smooth functions of the confusion matrix: the
delta method on its multinomial covariance (the rows a random sample of the population),
the construction Takahashi et al. (2022) give for F1. ROC AUC: DeLong (:mod:`.auc`).

Regression: MAE and MAPE are means of per-row errors (normal interval by the central
limit theorem); RMSE is the square root of the MSE's normal interval, the square root
being monotone.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from modelmonitor.core.stats.performance.auc import realized_auc
from modelmonitor.core.stats.performance.confusion import count_metrics as _metrics
from modelmonitor.core.stats.performance.confusion import multinomial_var
from modelmonitor.core.stats.performance.intervals import (
    UNDEFINED,
    Estimate,
    around,
    normal,
    wilson,
)

Array = npt.NDArray[np.float64]


def confusion_matrix(t_idx: npt.NDArray[np.intp], p_idx: npt.NDArray[np.intp], k: int) -> Array:
    return np.bincount(t_idx * k + p_idx, minlength=k * k).reshape(k, k).astype(np.float64)


def count_metrics(
    t_idx: npt.NDArray[np.intp], p_idx: npt.NDArray[np.intp], k: int, pos: int | None, z: float
) -> dict[str, Estimate]:
    cm = confusion_matrix(t_idx, p_idx, k)
    out = {
        m: around(value, math.sqrt(max(multinomial_var(cm, g), 0.0)), z)
        for m, (value, g) in _metrics(cm, pos).items()
    }
    out["accuracy"] = wilson(float(np.trace(cm)), float(cm.sum()), z)
    if pos is not None:
        tp = float(cm[pos, pos])
        out["precision"] = _zero_when_undefined(wilson(tp, float(cm[:, pos].sum()), z))
        out["recall"] = _zero_when_undefined(wilson(tp, float(cm[pos].sum()), z))
    return out


def _zero_when_undefined(e: Estimate) -> Estimate:
    """A ratio with no denominator is 0 (as in model quality), without an interval."""
    return Estimate(0.0) if e.value is None else e


def realized_classification(
    t_idx: npt.NDArray[np.intp],
    p_idx: npt.NDArray[np.intp],
    proba: Array | None,
    pos: int | None,
    z: float,
    *,
    k: int | None = None,
) -> tuple[dict[str, Estimate], list[int]]:
    """Accuracy, precision, recall, F1 and (with ``proba``) ROC AUC, with intervals; and
    the classes left out of the macro AUC. ``k``: the number of classes (default: the
    probability columns)."""
    if k is None:
        if proba is None:
            raise ValueError("give k (the number of classes) or proba")
        k = proba.shape[1]
    out = count_metrics(t_idx, p_idx, k, pos, z)
    skipped: list[int] = []
    if proba is not None:
        out["roc_auc"], skipped = realized_auc(t_idx, proba, pos, z)
    return out, skipped


def realized_regression(y: Array, pred: Array, z: float) -> dict[str, Estimate]:
    """MAE, RMSE and MAPE (rows with a zero target left out) with intervals."""
    err = pred - y
    abs_err = np.abs(err)
    mse = normal(np.square(err), z)
    rmse = (
        UNDEFINED
        if mse.value is None
        else Estimate(
            float(np.sqrt(mse.value)),
            None if mse.lower is None else float(np.sqrt(mse.lower)),
            None if mse.upper is None else float(np.sqrt(mse.upper)),
        )
    )
    nonzero = y != 0
    mape = normal(abs_err[nonzero] / np.abs(y[nonzero]), z)
    return {"mae": normal(abs_err, z), "rmse": rmse, "mape": mape}
