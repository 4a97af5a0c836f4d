"""Data quality of a partitioned window, from its merged profile (no rows held).

The same report as :func:`modelmonitor.core.stats.quality.data_quality`, the same
thresholds and issues. Rows, missing values, infinities, min/max and new categories are
exact (new categories up to the window's category cap: past it, only the labels its
frequent-items sketch knows are seen). The out-of-range count is exact when the window's
column holds its exact sample or stays inside the reference's range, and otherwise read
from the window's sketch (within its rank error times n; the flag needs a 1% share).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from modelmonitor.core.dataset import Dataset, Feature
from modelmonitor.core.stats.column_profile import (
    OTHER_CATEGORIES,
    CategoricalProfile,
    NumericalProfile,
)
from modelmonitor.core.stats.exceedance import out_of_range_pvalue
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.quality import (
    MAX_LISTED_CATEGORIES,
    DataQualityReport,
    FeatureQuality,
    Issue,
    NewCategory,
    QualityThresholds,
    _issues,
    _none_if_nan,
    _Ref,
    _reference_summaries,
    _share,
)


def window_quality(
    current: ReferenceProfile,
    reference: ReferenceProfile | Dataset,
    *,
    features: Sequence[Feature] | None = None,
    thresholds: QualityThresholds | None = None,
) -> DataQualityReport:
    """Data quality of a partitioned window's profile against ``reference``."""
    t = thresholds or QualityThresholds()
    refs, ref_rows = _reference_summaries(reference)
    names = [f.name for f in features] if features is not None else list(refs)
    absent = [n for n in names if n not in refs]
    if absent:
        raise ValueError(f"feature(s) not in the reference: {', '.join(map(repr, absent))}")
    results: list[FeatureQuality] = []
    issues: list[Issue] = []
    missing_cols: list[str] = []
    for name in names:
        ref = refs[name]
        col = current.columns.get(name)
        if col is None:
            missing_cols.append(name)
            issues.append(Issue(name, "missing_column", "column missing from the current data"))
            continue
        if col.type != ref.type:  # the window is read with the reference's types
            raise ValueError(f"feature {name!r}: window profiled as {col.type}")
        if isinstance(col, NumericalProfile):
            fq = _numerical_quality_profile(name, col, ref)
        else:
            fq = _categorical_quality_profile(name, col, ref)
        results.append(fq)
        issues.extend(_issues(fq, t))
    wanted = set(names)
    return DataQualityReport(
        rows=current.n_rows,
        reference_rows=ref_rows,
        features=tuple(results),
        missing_columns=tuple(missing_cols),
        extra_columns=tuple(n for n in current.columns if n not in wanted),
        issues=tuple(issues),
        thresholds=t,
    )


def _out_of_range_from_profile(col: NumericalProfile, ref: _Ref) -> int:
    """Finite values outside the reference's range: exact from an exact sample or when the
    window's own min/max lie inside it, else estimated from the window's sketch (within
    its rank error times n)."""
    out = 0
    if col.min < ref.lo:
        if col.values is not None:
            out += int(np.searchsorted(col.values, ref.lo, side="left"))
        else:
            below = float(col.cdf(np.array([np.nextafter(ref.lo, -np.inf)]))[0])
            out += max(1, round(below * col.n))  # at least the window's own minimum
    if col.max > ref.hi:
        if col.values is not None:
            out += col.n - int(np.searchsorted(col.values, ref.hi, side="right"))
        else:
            above = 1.0 - float(col.cdf(np.array([ref.hi]))[0])
            out += max(1, round(above * col.n))
    return out


def _numerical_quality_profile(name: str, col: NumericalProfile, ref: _Ref) -> FeatureQuality:
    rows, nan = col.n_total, col.n_missing
    present = rows - nan
    out_share: float | None = None
    out = 0
    if not math.isnan(ref.lo) and present:
        out = _out_of_range_from_profile(col, ref) if col.n else 0
        out_share = out / present
    out_p = (
        out_of_range_pvalue(out, ref.rows - ref.missing - ref.inf, col.n)
        if out_share is not None
        else None
    )
    distinct = 0 if col.n == 0 else (1 if col.min == col.max else 2)
    return FeatureQuality(
        name=name,
        type="numerical",
        reference_type=ref.type,
        rows=rows,
        missing=nan,
        missing_share=nan / rows if rows else 0.0,
        reference_missing_share=ref.missing_share,
        pos_inf=col.n_pos_inf,
        neg_inf=col.n_neg_inf,
        reference_inf=ref.inf,
        min=_none_if_nan(col.min),
        max=_none_if_nan(col.max),
        reference_min=_none_if_nan(ref.lo),
        reference_max=_none_if_nan(ref.hi),
        out_of_range=out,
        out_of_range_share=out_share,
        out_of_range_pvalue=out_p,
        distinct=distinct,
        constant=distinct == 1,
        reference_constant=ref.constant,
    )


def _categorical_quality_profile(name: str, col: CategoricalProfile, ref: _Ref) -> FeatureQuality:
    counts = {k: v for k, v in col.estimated_counts().items() if v > 0}
    counts.pop(OTHER_CATEGORIES, None)  # a sketch's unlisted labels: unknown, not new
    rows, present = col.n_total, col.n
    new = sorted(
        ((k, v) for k, v in counts.items() if k not in ref.categories), key=lambda kv: -kv[1]
    )
    new_count = sum(v for _, v in new)
    listed = tuple(NewCategory(k, v, v / present) for k, v in new[:MAX_LISTED_CATEGORIES])
    distinct = len(counts)
    return FeatureQuality(
        name=name,
        type="categorical",
        reference_type=ref.type,
        rows=rows,
        missing=col.n_missing,
        missing_share=col.n_missing / rows if rows else 0.0,
        reference_missing_share=ref.missing_share,
        new_categories=listed,
        new_category_count=new_count,
        new_category_share=_share(new_count, present),
        distinct=distinct,
        constant=distinct == 1,
        reference_constant=ref.constant,
    )
