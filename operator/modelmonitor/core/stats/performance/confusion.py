"""Accuracy, precision, recall and F1 as functions of a confusion matrix, and their
standard errors by the delta method.

``C[j, k]`` counts rows of true class ``j`` predicted as ``k``. Binary tasks report the
positive class's precision, recall and F1; more classes report their unweighted (macro)
mean, a ratio with a zero denominator counting 0 (as :mod:`..model_quality` does).

The functions take a stack of matrices (``(..., K, K)``), so the gradient of every metric
is computed at once by central differences over the K*K cells (2 K^2 evaluations of a
few array operations; K is small). The covariance of the cells comes from the caller:
multinomial for realized values (rows drawn from the population), block-diagonal by
predicted class for estimated ones (labels drawn from calibrated probabilities).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

COUNT_METRICS = ("accuracy", "precision", "recall", "f1")

Array = npt.NDArray[np.float64]


def _ratio(num: Array, den: Array) -> Array:
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def metrics_of(cm: Array, pos: int | None) -> dict[str, Array]:
    """The four count metrics of a stack of confusion matrices (``pos`` None: macro)."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    true_n = cm.sum(axis=-1)
    pred_n = cm.sum(axis=-2)
    total = true_n.sum(axis=-1)
    precision = _ratio(tp, pred_n)
    recall = _ratio(tp, true_n)
    f1 = _ratio(2 * tp, true_n + pred_n)
    out = {"accuracy": _ratio(tp.sum(axis=-1), total)}
    if pos is None:
        out.update(precision=precision.mean(-1), recall=recall.mean(-1), f1=f1.mean(-1))
    else:
        out.update(precision=precision[..., pos], recall=recall[..., pos], f1=f1[..., pos])
    return out


def gradients(cm: Array, pos: int | None) -> dict[str, Array]:
    """d metric / d C[j, k], flattened row-major (K*K,), by central differences."""
    k = cm.shape[0]
    h = max(1e-6 * float(cm.sum()), 1e-9)
    eye = np.eye(k * k).reshape(k * k, k, k) * h
    up = metrics_of(cm[None] + eye, pos)
    down = metrics_of(cm[None] + -eye, pos)
    return {m: (up[m] - down[m]) / (2 * h) for m in COUNT_METRICS}


def multinomial_cov(cm: Array) -> Array:
    """Covariance of the cells of a confusion matrix of n rows drawn i.i.d. from the
    population whose cell shares are ``cm / n`` (plugged in): ``n (diag pi - pi pi')``."""
    n = float(cm.sum())
    pi = cm.ravel() / n if n > 0 else cm.ravel()
    return n * (np.diag(pi) - np.outer(pi, pi))


def expected_confusion(proba: Array, pred: npt.NDArray[np.intp], k: int) -> tuple[Array, Array]:
    """The expected confusion matrix when each row's class is drawn from its calibrated
    probabilities ``proba`` (n, k), and the covariance of its cells.

    ``E C[j, c] = sum over rows predicted c of p_ij``. Rows predicted ``c`` only fill
    column ``c``, and rows are independent, so the covariance is block-diagonal by column:
    ``Cov(C[:, c]) = sum over rows predicted c of (diag p_i - p_i p_i')``.
    """
    expected = np.zeros((k, k))
    cov = np.zeros((k * k, k * k))
    for c in range(k):
        rows = proba[pred == c]
        if rows.shape[0] == 0:
            continue
        expected[:, c] = rows.sum(axis=0)
        block = np.diag(expected[:, c]) - rows.T @ rows
        idx = np.arange(k) * k + c
        cov[np.ix_(idx, idx)] = block
    return expected, cov
