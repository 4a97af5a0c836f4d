"""Drift methods for one categorical feature.

The reference is a :class:`~modelmonitor.core.stats.profile.CategoricalProfile` (exact
category counts) or any column (a ``CategoricalColumn``, or a sequence of labels);
the current window is a column, or a window profile's (possibly estimated) counts.
Missing values (code -1 / None) are dropped.

Both samples are compared over the **union** of their categories, reference order
first, categories seen in the current window only appended. A category that never
occurs in the reference is therefore handled explicitly, never dropped:

* :func:`chi2` is the chi-squared test of **homogeneity** on the 2 x K contingency table
  (reference counts, current counts), without continuity correction. Unlike a
  goodness-of-fit test against reference proportions, its expected counts come from
  the pooled sample, so a category with zero reference count has a positive expected
  count and contributes to the statistic instead of dividing by zero. Categories
  absent from both samples are left out (they carry no information).
* :func:`psi` and :func:`jensenshannon` give a new category reference proportion 0:
  Jensen-Shannon needs no smoothing; PSI raises proportions below 1e-4 to 1e-4 and
  renormalises.
* :func:`fisher` (Fisher's exact test) and :func:`ztest` (pooled two-proportion z-test)
  need at most two categories in the union; more is a ValueError.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np

from modelmonitor.core.dataset import CategoricalColumn, Column, FloatArray
from modelmonitor.core.stats.column_profile import (
    OTHER_CATEGORIES,
    CategoricalProfile,
    as_categorical,
)
from modelmonitor.core.stats.errors import DegenerateInputWarning
from modelmonitor.core.stats.numerical import EPS, js_from_proportions, psi_from_proportions
from modelmonitor.core.stats.results import DistanceResult, TestResult

__all__ = ["align", "chi2", "fisher", "jensenshannon", "psi", "ztest"]

CategoricalInput = CategoricalProfile | Column | Iterable[object]


def _as_column(values: Column | Iterable[object]) -> Column:
    if isinstance(values, CategoricalColumn | np.ndarray):
        return values
    return CategoricalColumn.from_values(values)


def _as_profile(values: CategoricalInput) -> CategoricalProfile:
    if isinstance(values, CategoricalProfile):
        return values
    return CategoricalProfile.from_column("reference", _as_column(values))


def align(
    reference: CategoricalInput, current: CategoricalInput
) -> tuple[tuple[str, ...], FloatArray, FloatArray]:
    """(labels, reference counts, current counts) over the union of observed categories.

    Categories with zero count in both samples are left out.
    """
    ref = _as_profile(reference)
    if isinstance(current, CategoricalProfile):  # a window profile: its (estimated) counts
        window = current.estimated_counts()
        cur_labels, cur_list = list(window), list(window.values())
    else:
        col = as_categorical(_as_column(current))
        cur_counts = np.bincount(col.codes[col.codes >= 0], minlength=len(col.categories))
        cur_labels, cur_list = list(col.categories), cur_counts.tolist()
    ref_map = ref.estimated_counts()
    if not ref.exact or _is_sketch(current):
        window_map = _pooled(ref_map, dict(zip(cur_labels, cur_list, strict=True)), ref, current)
        ref_map, cur_labels, cur_list = (
            window_map[0],
            list(window_map[1]),
            list(window_map[1].values()),
        )
    index = {label: i for i, label in enumerate(ref_map)}
    labels = list(ref_map)
    ref_counts = list(ref_map.values())
    cur_aligned = [0] * len(labels)
    for label, count in zip(cur_labels, cur_list, strict=True):
        i = index.get(label)
        if i is None:
            index[label] = len(labels)
            labels.append(label)
            ref_counts.append(0)
            cur_aligned.append(int(count))
        else:
            cur_aligned[i] += int(count)
    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_aligned, dtype=np.float64)
    keep = (r + c) > 0
    return tuple(np.asarray(labels, dtype=object)[keep].tolist()), r[keep], c[keep]


def _pooled(
    ref_map: dict[str, int], cur_map: dict[str, int], ref: CategoricalProfile, current: object
) -> tuple[dict[str, int], dict[str, int]]:
    """Both sides over the labels every sketched side lists; the rest pooled into one
    :data:`OTHER_CATEGORIES` bucket on both sides, so an unlisted label is never
    compared with zero (a frequent-items sketch knows only its frequent labels)."""
    listed: set[str] | None = None
    for side, sketched in ((ref_map, not ref.exact), (cur_map, _is_sketch(current))):
        if sketched:
            keys = set(side) - {OTHER_CATEGORIES}
            listed = keys if listed is None else listed & keys
    assert listed is not None
    out: list[dict[str, int]] = []
    for side in (ref_map, cur_map):
        pooled: dict[str, int] = {}
        rest = 0
        for label, count in side.items():
            if label in listed:
                pooled[label] = count
            else:
                rest += count
        if rest:
            pooled[OTHER_CATEGORIES] = rest
        out.append(pooled)
    return out[0], out[1]


def _is_sketch(current: object) -> bool:
    return isinstance(current, CategoricalProfile) and not current.exact


def _validate(
    reference: CategoricalInput,
    current: CategoricalInput,
    *,
    method: str,
    max_categories: int | None = None,
) -> tuple[tuple[str, ...], FloatArray, FloatArray]:
    labels, r, c = align(reference, current)
    if r.sum() < 1 or c.sum() < 1:
        raise ValueError(
            f"method {method!r} needs at least one non-missing value in each sample; "
            f"got {int(r.sum())} reference and {int(c.sum())} current"
        )
    if max_categories is not None and len(labels) > max_categories:
        raise ValueError(
            f"method {method!r} needs at most {max_categories} categories, but the samples "
            f"hold {len(labels)} ({', '.join(map(repr, labels[:5]))}"
            f"{', ...' if len(labels) > 5 else ''}); use chi2 or jensenshannon"
        )
    return labels, r, c


def chi2(reference: CategoricalInput, current: CategoricalInput) -> TestResult:
    """Chi-squared test of homogeneity over the union of categories (no Yates correction)."""
    _, r, c = _validate(reference, current, method="chi2")
    if r.shape[0] < 2:
        warnings.warn("chi2: both samples hold a single category", DegenerateInputWarning, 2)
        return TestResult(0.0, 1.0)
    table = np.stack([r, c])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum(np.square(table - expected) / expected))
    from scipy import special  # imported by the runs that test, not by every run

    return TestResult(stat, float(special.chdtrc(r.shape[0] - 1, stat)))  # = chi2.sf


def psi(
    reference: CategoricalInput, current: CategoricalInput, *, eps: float = EPS
) -> DistanceResult:
    """Population stability index over category proportions (smoothed)."""
    _, r, c = _validate(reference, current, method="psi")
    return DistanceResult(psi_from_proportions(r / r.sum(), c / c.sum(), eps))


def jensenshannon(reference: CategoricalInput, current: CategoricalInput) -> DistanceResult:
    """Jensen-Shannon distance (base 2, in [0, 1]) over category proportions."""
    _, r, c = _validate(reference, current, method="jensenshannon")
    return DistanceResult(js_from_proportions(r / r.sum(), c / c.sum()))


def fisher(reference: CategoricalInput, current: CategoricalInput) -> TestResult:
    """Fisher's exact test (two-sided) on the 2 x 2 table; statistic is the odds ratio."""
    _, r, c = _validate(reference, current, method="fisher", max_categories=2)
    if r.shape[0] < 2:
        warnings.warn("fisher: both samples hold a single category", DegenerateInputWarning, 2)
        return TestResult(1.0, 1.0)
    from scipy import stats  # heavy: only runs with this method pay

    res = stats.fisher_exact(np.stack([r, c]).astype(np.int64))
    odds = float(res.statistic)
    return TestResult(odds, min(1.0, float(res.pvalue)))


def ztest(reference: CategoricalInput, current: CategoricalInput) -> TestResult:
    """Two-proportion z-test with pooled variance (two-sided), binary features.

    ``statistic = (p_cur - p_ref) / sqrt(p (1 - p) (1/n_ref + 1/n_cur))`` where p_* is the
    share of the first category of the union and p the pooled share.
    """
    _, r, c = _validate(reference, current, method="ztest", max_categories=2)
    n_r, n_c = float(r.sum()), float(c.sum())
    if r.shape[0] < 2:
        warnings.warn("ztest: both samples hold a single category", DegenerateInputWarning, 2)
        return TestResult(0.0, 1.0)
    p_r, p_c = r[0] / n_r, c[0] / n_c
    pooled = (r[0] + c[0]) / (n_r + n_c)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_r + 1.0 / n_c))
    z = float((p_c - p_r) / se)
    from scipy import special  # imported by the runs that test, not by every run

    return TestResult(z, min(1.0, float(2.0 * special.ndtr(-abs(z)))))  # = 2 norm.sf(|z|)
