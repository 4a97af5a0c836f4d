"""Accuracy, precision, recall and F1 as functions of a confusion matrix, their gradients,
and the variances the delta method needs.

``C[j, c]`` counts rows of true class ``j`` predicted as ``c``. Binary tasks report the
positive class's precision, recall and F1; more classes report their unweighted (macro)
mean, a ratio with a zero denominator counting 0 (as :mod:`..model_quality` does).

Every gradient is a K x K matrix in closed form, and every variance is a sum over cells or
rows, so the cost is O(K^2) for realized values and O(n K) for estimated ones: never a
K^2 x K^2 covariance, which a window with hundreds of classes could not hold.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

COUNT_METRICS = ("accuracy", "precision", "recall", "f1")

Array = npt.NDArray[np.float64]


def _div(num: Array, den: Array) -> Array:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def count_metrics(cm: Array, pos: int | None) -> dict[str, tuple[float, Array]]:
    """Each count metric's value and its gradient d metric / d C (K x K).

    Per class ``c``: precision ``C_cc / P_c`` depends on column ``c`` only (``P`` the
    column sums), recall ``C_cc / T_c`` on row ``c`` (``T`` the row sums), F1
    ``2 C_cc / (T_c + P_c)`` on both. The reported value is ``sum_c w_c metric_c`` with
    ``w`` one-hot at ``pos`` (binary) or ``1/K`` (macro).
    """
    k = cm.shape[0]
    n = float(cm.sum())
    tp = np.diag(cm).astype(np.float64)
    t = cm.sum(axis=1).astype(np.float64)
    p = cm.sum(axis=0).astype(np.float64)
    eye = np.eye(k)
    w = np.full(k, 1.0 / k) if pos is None else np.eye(k)[pos]
    precision = _div(tp, p)
    recall = _div(tp, t)
    d = t + p
    f1 = _div(2 * tp, d)
    acc = tp.sum() / n if n > 0 else 0.0
    g_acc = (eye - acc) / n if n > 0 else np.zeros((k, k))
    g_prec = _div((eye - precision[None, :]) * w[None, :], np.broadcast_to(p[None, :], (k, k)))
    g_rec = _div((eye - recall[:, None]) * w[:, None], np.broadcast_to(t[:, None], (k, k)))
    side = _div(w * f1, d)
    g_f1 = np.diag(_div(2 * w, d)) - side[:, None] - side[None, :]
    return {
        "accuracy": (float(acc), g_acc),
        "precision": (float(w @ precision), g_prec),
        "recall": (float(w @ recall), g_rec),
        "f1": (float(w @ f1), g_f1),
    }


def multinomial_var(cm: Array, g: Array) -> float:
    """Var of ``sum g * C`` when the n rows are drawn i.i.d. from the population whose cell
    shares are ``C / n`` (plugged in): ``n (sum g^2 pi - (sum g pi)^2)``."""
    n = float(cm.sum())
    if n <= 0:
        return 0.0
    pi = cm / n
    return n * float((g * g * pi).sum() - float((g * pi).sum()) ** 2)


def expected_confusion(proba: Array, pred: npt.NDArray[np.intp], k: int) -> Array:
    """``E C[j, c] = sum over rows predicted c of p_ij`` when each row's class is drawn
    from its calibrated probabilities ``proba`` (n, k)."""
    return np.stack([np.bincount(pred, weights=proba[:, j], minlength=k) for j in range(k)])


def expected_var(proba: Array, pred: npt.NDArray[np.intp], e: Array, g: Array) -> float:
    """Var of ``sum g * C`` under those draws. Rows are independent and row ``i`` adds
    ``g[Y_i, pred_i]`` with ``Y_i`` categorical(``p_i``), so the variance is
    ``sum_i (sum_j g[j, pred_i]^2 p_ij - (sum_j g[j, pred_i] p_ij)^2)``
    ``= sum g^2 * E C - sum_i (p_i . g[:, pred_i])^2``: O(n K)."""
    s = np.einsum("ij,ij->i", proba, g.T[pred])
    return float((g * g * e).sum() - float(s @ s))


#: Up to this many classes :func:`expected_vars` sums second moments per predicted class
#: (O(n K^2) once, then O(K^3) per metric); beyond it, one O(n K) pass per metric.
MOMENTS_MAX_CLASSES = 8


def predicted_moments(proba: Array, pred: npt.NDArray[np.intp], k: int) -> Array:
    """``M[c] = sum over rows predicted c of p_i p_i'`` (k, k, k): the second moments of
    the calibrated probabilities per predicted class."""
    m = np.empty((k, k, k))
    for j in range(k):
        for h in range(j, k):
            m[:, j, h] = np.bincount(pred, weights=proba[:, j] * proba[:, h], minlength=k)
            m[:, h, j] = m[:, j, h]
    return m


def expected_vars(
    proba: Array, pred: npt.NDArray[np.intp], e: Array, gs: list[Array]
) -> list[float]:
    """:func:`expected_var` of each gradient in ``gs``, the rows read once for all of them.

    Row ``i`` predicted ``c`` adds ``s_i = p_i . g[:, c]``, so ``sum_i s_i^2 = sum_c
    g[:, c]' M_c g[:, c]`` with ``M_c`` the second moments of the rows predicted ``c``
    (:func:`predicted_moments`): the same sum, with the O(n) part shared by the metrics.
    """
    k = e.shape[0]
    if k > MOMENTS_MAX_CLASSES:
        return [expected_var(proba, pred, e, g) for g in gs]
    m = predicted_moments(proba, pred, k)
    return [float((g * g * e).sum() - np.einsum("jc,cjh,hc->", g, m, g)) for g in gs]
