"""ROC AUC with intervals: realized (labels known) and expected (labels drawn from
calibrated probabilities).

Realized: DeLong, DeLong and Clarke-Pearson (1988), in its rank form (Sun and Xu 2014):
each row's *placement* (the share of the other class it outranks, ties half) gives the
AUC's influence function, and the variance is the sum of squared influences, ``S10/n1 +
S01/n0``. It is nonparametric and O(n log n). Hanley-McNeil's formula instead assumes a
shape for the score distributions (exponential) and is off for the bimodal scores of a
good classifier. The influence-function form carries over to the macro average of
one-vs-rest AUCs: average the rows' influences over the classes, then sum their squares,
which counts the classes' correlation (every row plays in every class's AUC).

Expected: with scores fixed and the labels ``Y_i ~ Bernoulli(q_i)`` independent, the
Mann-Whitney form ``AUC = (S - n1 (n1 + 1) / 2) / (n1 (n - n1))`` depends on two sums of
independent terms, ``S = sum Y_i r_i`` (``r`` the scores' mid-ranks) and ``n1 = sum Y_i``.
The estimate is the expected numerator over the expected denominators, which equals the
area under the expected ROC curve (NannyML's CBPE); its standard error is the delta method
on the exact covariance of (S, n1). For several classes the 2K sums of the one-vs-rest
AUCs have a closed-form covariance (each row's label is one categorical draw), summed row
by row in O(n K).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from modelmonitor.core.stats.performance.intervals import UNDEFINED, Estimate, around

Array = npt.NDArray[np.float64]


def is_sorted(x: Array) -> bool:
    """``x`` is non-decreasing (O(n), far cheaper than sorting it again)."""
    return bool(np.all(x[1:] >= x[:-1]))


def sort_order(x: Array) -> npt.NDArray[np.intp] | None:
    """The permutation that sorts ``x``, or None when ``x`` already is sorted (callers then
    skip the gathers and the scatter back as well as the sort)."""
    return None if is_sorted(x) else np.argsort(x)


def midranks(x: Array) -> Array:
    """1-based ranks, ties given the mean of the ranks they span (one unstable sort, none
    when ``x`` is sorted already)."""
    n = x.size
    order = sort_order(x)
    xs = x if order is None else x[order]
    starts = np.flatnonzero(np.concatenate(([True], xs[1:] != xs[:-1])))
    size = np.diff(np.append(starts, n))
    sorted_ranks = np.repeat(starts + (size + 1) / 2.0, size)
    if order is None:
        return sorted_ranks
    ranks = np.empty(n)
    ranks[order] = sorted_ranks
    return ranks


def _influence(positive: npt.NDArray[np.bool_], score: Array) -> tuple[float, Array] | None:
    """(AUC, per-row influence scaled by n) of one binary split; None when one class is
    absent. One sort: placements come from counts per group of tied scores."""
    n = score.size
    n1 = int(np.count_nonzero(positive))
    n0 = n - n1
    if n1 == 0 or n0 == 0:
        return None
    order = sort_order(score)  # ties are grouped below, so no stable sort is needed
    s = score if order is None else score[order]
    is_pos = positive if order is None else positive[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    size = np.diff(np.append(starts, n))
    pos_in = np.add.reduceat(is_pos.astype(np.int64), starts)
    neg_in = size - pos_in
    pos_before = np.cumsum(pos_in) - pos_in
    neg_before = np.cumsum(neg_in) - neg_in
    group = np.repeat(np.arange(starts.size), size)
    # positives: share of negatives below (ties half); negatives: share of positives above
    v_sorted = np.where(
        is_pos,
        (neg_before[group] + neg_in[group] / 2.0) / n0,
        (n1 - pos_before[group] - pos_in[group] / 2.0) / n1,
    )
    if order is None:
        v = v_sorted
    else:
        v = np.empty(n)
        v[order] = v_sorted
    auc = float(v[positive].mean())
    phi = np.where(positive, (v - auc) * n / n1, (v - auc) * n / n0)
    return auc, phi


def auc_value(positive: npt.NDArray[np.bool_], score: Array) -> float | None:
    """The AUC of one binary split without its influences (what :func:`_influence` gives
    as its first value): per group of tied scores, its positives times the negatives below
    it plus half the tied ones; None when one class is absent. O(n) on sorted scores."""
    n = score.size
    n1 = int(np.count_nonzero(positive))
    n0 = n - n1
    if n1 == 0 or n0 == 0:
        return None
    order = sort_order(score)
    s = score if order is None else score[order]
    is_pos = positive if order is None else positive[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    pos_in = np.add.reduceat(is_pos.astype(np.float64), starts)
    neg_in = np.diff(np.append(starts, n)) - pos_in
    neg_before = np.cumsum(neg_in) - neg_in
    # a sum of products, not ``@``: a dot product this long starts BLAS threads, which on
    # a shared machine spin on the other core for no gain
    return float(np.sum(pos_in * (neg_before + neg_in / 2.0))) / (n1 * n0)


def macro_auc_value(t_idx: npt.NDArray[np.intp], proba: Array, pos: int | None) -> float | None:
    """The value of :func:`realized_auc` (binary, or the mean over the classes present)."""
    classes = [pos] if pos is not None else list(range(proba.shape[1]))
    values = [auc_value(t_idx == c, proba[:, c]) for c in classes]
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def realized_auc(
    t_idx: npt.NDArray[np.intp], proba: Array, pos: int | None, z: float
) -> tuple[Estimate, list[int]]:
    """Binary (``pos``) or macro one-vs-rest AUC with DeLong's interval.

    Returns the estimate and the classes left out of the macro average (absent from the
    labels, so their AUC is undefined).
    """
    n, k = proba.shape
    classes = [pos] if pos is not None else list(range(k))
    aucs: list[float] = []
    phis: list[Array] = []
    skipped: list[int] = []
    for c in classes:
        got = _influence(t_idx == c, proba[:, c])
        if got is None:
            skipped.append(c)
            continue
        aucs.append(got[0])
        phis.append(got[1])
    if not aucs:
        return UNDEFINED, skipped
    phi = np.mean(phis, axis=0)
    std = math.sqrt(float(np.square(phi).sum())) / n
    return around(float(np.mean(aucs)), std, z), skipped


def expected_auc(
    calibrated: Array, scores: Array, pos: int | None, z: float
) -> tuple[Estimate, list[int]]:
    """Expected binary (``pos``) or macro one-vs-rest AUC when each row's class is drawn
    from ``calibrated`` (n, k), ranking by the model's own ``scores`` (n, k)."""
    n, k = calibrated.shape
    classes = [pos] if pos is not None else list(range(k))
    p = calibrated[:, classes]
    r = np.column_stack([midranks(scores[:, c]) for c in classes])
    m = p.sum(axis=0)  # E n1 per class
    es = (p * r).sum(axis=0)  # E S per class
    var_n1 = (p * (1.0 - p)).sum(axis=0)
    den = m * (n - m)
    ok = (m > 0.5) & (n - m > 0.5)
    if not ok.any():
        return UNDEFINED, list(classes)
    safe = np.where(ok, den, 1.0)
    # E[S - n1 (n1 + 1) / 2] over E-plugged denominators (the expected ROC curve's area)
    auc_c = (es - (var_n1 + m * m + m) / 2.0) / safe
    c_used = int(np.count_nonzero(ok))
    g_s = np.where(ok, 1.0 / safe, 0.0) / c_used
    num = es - m * (m + 1) / 2.0
    g_n = np.where(ok, (-(m + 0.5) * den - num * (n - 2 * m)) / safe**2, 0.0) / c_used
    # The macro AUC moves by sum_k (g_s_k S_k + g_n_k n1_k) = sum_i sum_k a_ik Y_ik with
    # a_ik = g_s_k r_ik + g_n_k; row i's labels are one categorical draw, so it adds
    # sum_k a_ik^2 p_ik - (sum_k a_ik p_ik)^2 (binary, one column: a^2 p (1 - p)): O(n K),
    # no 2K x 2K covariance.
    a = r * g_s + g_n
    ap = a * p
    var = float((a * ap).sum() - np.square(ap.sum(axis=1)).sum())
    skipped = [classes[i] for i in np.flatnonzero(~ok)]
    value = float(np.clip(auc_c[ok].mean(), 0.0, 1.0))
    return around(value, math.sqrt(max(var, 0.0)), z), skipped
