"""Data quality of a current window against its reference.

Per feature it counts what a model owner wants to hear about before any drift number:

* missing values: the share in the current window next to the reference's share;
* infinities (+inf / -inf) in numerical columns, reported apart from missing values;
* out-of-range values: finite values outside the reference's [min, max], flagged only
  when more of them than chance would put there (:mod:`~modelmonitor.core.stats.exceedance`);
* new categories: labels the reference never had, with their count and share;
* constant columns: a single distinct value (or none at all) in the current window;
* type mismatches: numerical in the reference, text in the current window (or the
  reverse); such a column gets no per-type statistics;
* missing columns (in the reference, not in the current window) and extra columns.

The reference is a saved :class:`~modelmonitor.core.stats.profile.ReferenceProfile` or a
:class:`~modelmonitor.core.dataset.Dataset`; either is first reduced to the few numbers per
column that data quality needs. Every count is a vectorised numpy pass over a column.

What is flagged as an :class:`Issue` is set by :class:`QualityThresholds`; the numbers are
reported whether flagged or not. Shares are of all rows (missing) or of the non-missing
values (out-of-range, new categories).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np

from modelmonitor.core.dataset import CategoricalColumn, Column, Dataset, Feature, FeatureType
from modelmonitor.core.stats.column_profile import CategoricalProfile, NumericalProfile
from modelmonitor.core.stats.exceedance import out_of_range_pvalue
from modelmonitor.core.stats.profile import ReferenceProfile

IssueKind: TypeAlias = Literal[
    "missing_column",
    "type_mismatch",
    "missing_share",
    "all_missing",
    "infinite",
    "out_of_range",
    "new_category",
    "constant",
]

#: New categories listed per feature (by count); the totals always count all of them.
MAX_LISTED_CATEGORIES = 20


@dataclass(frozen=True)
class QualityThresholds:
    """When a number becomes an :class:`Issue`.

    * ``missing_share_increase``: flag when the current missing share exceeds the
      reference's by more than this (absolute; default 0.05 = 5 percentage points);
    * ``out_of_range_share`` and ``out_of_range_alpha``: flag when more than this share
      of the non-missing values lies outside the reference's range (default 0.01) *and*
      that many would be that far out by chance with probability below
      ``out_of_range_alpha`` (default 0.001). A window from the reference's own
      distribution puts each value outside the range with probability 2 / (n + 1): for
      a reference of 400 rows, 2 of 170 values (1.2%) happen in one window of five, so a
      share alone raised false alarms on small data; the exact rank probability
      (:func:`~modelmonitor.core.stats.exceedance.out_of_range_pvalue`) does not;
    * ``new_category_share``: flag when new categories make up more than this share of
      the non-missing values (default 0: any new category is flagged);
    * infinities are flagged when the current window has them and the reference had none;
      a constant column when it was not constant in the reference.
    """

    missing_share_increase: float = 0.05
    out_of_range_share: float = 0.01
    out_of_range_alpha: float = 0.001
    new_category_share: float = 0.0


@dataclass(frozen=True)
class Issue:
    """One flagged data-quality finding."""

    feature: str
    kind: IssueKind
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class NewCategory:
    value: str
    count: int
    share: float

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "count": self.count, "share": self.share}


@dataclass(frozen=True)
class FeatureQuality:
    """Data quality of one feature present in both the reference and the current window.

    Numerical-only fields are 0 / None for categorical features and the reverse; all of
    them are 0 / None for a type mismatch.
    """

    name: str
    type: FeatureType
    """The type in the current window (the reference's type is ``reference_type``)."""
    reference_type: FeatureType
    rows: int
    missing: int
    missing_share: float
    reference_missing_share: float
    pos_inf: int = 0
    neg_inf: int = 0
    reference_inf: int = 0
    min: float | None = None
    max: float | None = None
    reference_min: float | None = None
    reference_max: float | None = None
    out_of_range: int = 0
    out_of_range_share: float | None = None
    out_of_range_pvalue: float | None = None
    """P(this many or more values out of range | same distribution as the reference)."""
    new_categories: tuple[NewCategory, ...] = ()
    new_category_count: int = 0
    """Values (not labels) in the current window whose label the reference never had."""
    new_category_share: float | None = None
    distinct: int = 0
    """Distinct non-missing values; exact for categorical, 0/1/2 (= "two or more") for
    numerical, which is all constant-column detection needs."""
    constant: bool = False
    reference_constant: bool = False

    @property
    def type_mismatch(self) -> bool:
        return self.type != self.reference_type

    @property
    def missing_share_change(self) -> float:
        return self.missing_share - self.reference_missing_share

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "reference_type": self.reference_type,
            "type_mismatch": self.type_mismatch,
            "rows": self.rows,
            "missing": self.missing,
            "missing_share": self.missing_share,
            "reference_missing_share": self.reference_missing_share,
            "missing_share_change": self.missing_share_change,
            "pos_inf": self.pos_inf,
            "neg_inf": self.neg_inf,
            "reference_inf": self.reference_inf,
            "min": self.min,
            "max": self.max,
            "reference_min": self.reference_min,
            "reference_max": self.reference_max,
            "out_of_range": self.out_of_range,
            "out_of_range_share": self.out_of_range_share,
            "out_of_range_pvalue": self.out_of_range_pvalue,
            "new_categories": [c.to_dict() for c in self.new_categories],
            "new_category_count": self.new_category_count,
            "new_category_share": self.new_category_share,
            "constant": self.constant,
            "reference_constant": self.reference_constant,
        }


@dataclass(frozen=True)
class DataQualityReport:
    """Data quality of a current window; ``issues`` lists what crossed a threshold."""

    rows: int
    reference_rows: int
    features: tuple[FeatureQuality, ...]
    missing_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    issues: tuple[Issue, ...]
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def type_mismatches(self) -> tuple[FeatureQuality, ...]:
        return tuple(f for f in self.features if f.type_mismatch)

    def feature(self, name: str) -> FeatureQuality:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "issue_count": len(self.issues),
            "issues": [i.to_dict() for i in self.issues],
            "missing_columns": list(self.missing_columns),
            "extra_columns": list(self.extra_columns),
            "type_mismatches": [
                {"name": f.name, "reference_type": f.reference_type, "type": f.type}
                for f in self.type_mismatches
            ],
            "features": [f.to_dict() for f in self.features],
        }


# --- the reference, reduced to what data quality needs ----------------------------------


@dataclass(frozen=True)
class _Ref:
    type: FeatureType
    rows: int
    missing: int
    inf: int = 0
    lo: float = math.nan
    hi: float = math.nan
    categories: frozenset[str] = frozenset()
    constant: bool = False

    @property
    def missing_share(self) -> float:
        return self.missing / self.rows if self.rows else 0.0


def _ref_from_profile(col: NumericalProfile | CategoricalProfile) -> _Ref:
    if isinstance(col, NumericalProfile):
        return _Ref(
            "numerical",
            col.n_total,
            col.n_missing,
            col.n_inf,
            col.min,
            col.max,
            constant=col.n > 0 and col.min == col.max,
        )
    seen = frozenset(k for k, v in col.estimated_counts().items() if v > 0)
    return _Ref("categorical", col.n_total, col.n_missing, categories=seen, constant=len(seen) == 1)


def _ref_from_column(col: Column) -> _Ref:
    if isinstance(col, CategoricalColumn):
        counts = np.bincount(col.codes + 1, minlength=len(col.categories) + 1)
        seen = frozenset(c for c, n in zip(col.categories, counts[1:], strict=True) if n > 0)
        return _Ref(
            "categorical", len(col), int(counts[0]), categories=seen, constant=len(seen) == 1
        )
    x = np.asarray(col, dtype=np.float64)
    nan, pos, neg, lo, hi = _numeric_counts(x)
    return _Ref("numerical", x.size, nan, pos + neg, lo, hi, constant=lo == hi)


def _reference_summaries(
    reference: ReferenceProfile | Dataset,
) -> tuple[dict[str, _Ref], int]:
    if isinstance(reference, ReferenceProfile):
        return {n: _ref_from_profile(c) for n, c in reference.columns.items()}, reference.n_rows
    return (
        {n: _ref_from_column(c) for n, c in reference.columns.items()},
        reference.n_rows,
    )


# --- current-window statistics --------------------------------------------------------


def _numeric_counts(x: np.ndarray) -> tuple[int, int, int, float, float]:
    """(NaN count, +inf count, -inf count, finite min, finite max).

    Clean columns (the common case) cost two passes: min and max propagate NaN, so
    finite extremes prove there is no NaN and no infinity.
    """
    if x.size == 0:
        return 0, 0, 0, math.nan, math.nan
    lo, hi = float(x.min()), float(x.max())
    if math.isfinite(lo) and math.isfinite(hi):
        return 0, 0, 0, lo, hi
    nan = int(np.count_nonzero(np.isnan(x)))
    finite = np.isfinite(x)
    n_finite = int(np.count_nonzero(finite))
    pos = int(np.count_nonzero(x == np.inf))
    neg = x.size - nan - n_finite - pos
    if n_finite == 0:
        return nan, pos, neg, math.nan, math.nan
    lo = float(np.min(x, where=finite, initial=np.inf))
    hi = float(np.max(x, where=finite, initial=-np.inf))
    return nan, pos, neg, lo, hi


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _none_if_nan(v: float) -> float | None:
    return None if math.isnan(v) else v


def _numerical_quality(name: str, x: np.ndarray, ref: _Ref) -> FeatureQuality:
    nan, pos, neg, lo, hi = _numeric_counts(x)
    present = x.size - nan
    out = 0
    out_share: float | None = None
    if not math.isnan(ref.lo) and present:
        # infinities compare outside any finite range: count them apart, not twice
        # (lo, hi are the finite extremes: only scan when some value lies outside)
        if not math.isnan(lo) and lo < ref.lo:
            out += int(np.count_nonzero(x < ref.lo)) - neg
        if not math.isnan(hi) and hi > ref.hi:
            out += int(np.count_nonzero(x > ref.hi)) - pos
        out_share = out / present
    finite = present - pos - neg
    out_p = (
        out_of_range_pvalue(out, ref.rows - ref.missing - ref.inf, finite)
        if out_share is not None
        else None
    )
    distinct = 0 if finite == 0 else (1 if lo == hi else 2)
    return FeatureQuality(
        name=name,
        type="numerical",
        reference_type=ref.type,
        rows=x.size,
        missing=nan,
        missing_share=nan / x.size if x.size else 0.0,
        reference_missing_share=ref.missing_share,
        pos_inf=pos,
        neg_inf=neg,
        reference_inf=ref.inf,
        min=_none_if_nan(lo),
        max=_none_if_nan(hi),
        reference_min=_none_if_nan(ref.lo),
        reference_max=_none_if_nan(ref.hi),
        out_of_range=out,
        out_of_range_share=out_share,
        out_of_range_pvalue=out_p,
        distinct=distinct,
        constant=distinct == 1,
        reference_constant=ref.constant,
    )


def _categorical_quality(name: str, col: CategoricalColumn, ref: _Ref) -> FeatureQuality:
    counts = np.bincount(col.codes + 1, minlength=len(col.categories) + 1)
    missing = int(counts[0])
    present = len(col) - missing
    per_label = counts[1:]
    is_new = np.fromiter(
        (c not in ref.categories for c in col.categories), dtype=bool, count=len(col.categories)
    )
    new_idx = np.flatnonzero(is_new & (per_label > 0))
    new_idx = new_idx[np.argsort(-per_label[new_idx], kind="stable")]
    new_count = int(per_label[new_idx].sum())
    listed = tuple(
        NewCategory(col.categories[i], int(per_label[i]), int(per_label[i]) / present)
        for i in new_idx[:MAX_LISTED_CATEGORIES]
    )
    distinct = int(np.count_nonzero(per_label))
    return FeatureQuality(
        name=name,
        type="categorical",
        reference_type=ref.type,
        rows=len(col),
        missing=missing,
        missing_share=missing / len(col) if len(col) else 0.0,
        reference_missing_share=ref.missing_share,
        new_categories=listed,
        new_category_count=new_count,
        new_category_share=_share(new_count, present),
        distinct=distinct,
        constant=distinct == 1,
        reference_constant=ref.constant,
    )


def _mismatch_quality(name: str, col: Column, ref: _Ref) -> FeatureQuality:
    if isinstance(col, CategoricalColumn):
        kind: FeatureType = "categorical"
        missing = int(np.count_nonzero(col.codes < 0))
    else:
        kind = "numerical"
        missing = int(np.count_nonzero(np.isnan(col)))
    rows = len(col)
    return FeatureQuality(
        name=name,
        type=kind,
        reference_type=ref.type,
        rows=rows,
        missing=missing,
        missing_share=missing / rows if rows else 0.0,
        reference_missing_share=ref.missing_share,
        reference_constant=ref.constant,
    )


def _issues(f: FeatureQuality, t: QualityThresholds) -> list[Issue]:
    out: list[Issue] = []
    if f.type_mismatch:
        out.append(
            Issue(
                f.name,
                "type_mismatch",
                f"{f.reference_type} in the reference, {f.type} in the current data",
            )
        )
        return out
    if f.rows and f.missing == f.rows:
        out.append(Issue(f.name, "all_missing", "every value is missing"))
    elif f.missing_share_change > t.missing_share_increase:
        out.append(
            Issue(
                f.name,
                "missing_share",
                f"{f.missing_share:.1%} missing (reference {f.reference_missing_share:.1%})",
            )
        )
    n_inf = f.pos_inf + f.neg_inf
    if n_inf and not f.reference_inf:
        out.append(
            Issue(
                f.name,
                "infinite",
                f"{n_inf} infinite value(s) (+inf {f.pos_inf}, -inf {f.neg_inf})",
            )
        )
    if (
        f.out_of_range_share is not None
        and f.out_of_range_share > t.out_of_range_share
        and (f.out_of_range_pvalue is None or f.out_of_range_pvalue < t.out_of_range_alpha)
    ):
        out.append(
            Issue(
                f.name,
                "out_of_range",
                f"{f.out_of_range_share:.1%} of values outside the reference range "
                f"[{f.reference_min:.6g}, {f.reference_max:.6g}]"
                + (
                    f" ({f.out_of_range} values; p={f.out_of_range_pvalue:.2g} by chance)"
                    if f.out_of_range_pvalue is not None
                    else ""
                ),
            )
        )
    if f.new_category_share is not None and f.new_category_share > t.new_category_share:
        shown = ", ".join(repr(c.value) for c in f.new_categories[:3])
        more = len(f.new_categories) > 3 or f.new_category_count > sum(
            c.count for c in f.new_categories[:3]
        )
        out.append(
            Issue(
                f.name,
                "new_category",
                f"{f.new_category_share:.1%} of values in categories unseen in the reference "
                f"({shown}{', ...' if more else ''})",
            )
        )
    if f.constant and not f.reference_constant:
        out.append(Issue(f.name, "constant", "a single distinct value in the current data"))
    return out


def data_quality(
    current: Dataset,
    reference: ReferenceProfile | Dataset,
    *,
    features: Sequence[Feature] | None = None,
    thresholds: QualityThresholds | None = None,
) -> DataQualityReport:
    """Data quality of ``current`` against ``reference`` (a profile or a data set).

    ``features`` restricts the check to those names (default: every reference column);
    types are the reference's. Current columns outside that set are extra columns. A
    feature the reference does not have is a caller error (ValueError).
    A partitioned window's merged profile is checked by
    :func:`modelmonitor.core.stats.quality_window.window_quality` instead.
    """
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
        if name not in current:
            missing_cols.append(name)
            issues.append(Issue(name, "missing_column", "column missing from the current data"))
            continue
        col = current[name]
        is_cat = isinstance(col, CategoricalColumn)
        if is_cat != (ref.type == "categorical"):
            fq = _mismatch_quality(name, col, ref)
        elif isinstance(col, CategoricalColumn):
            fq = _categorical_quality(name, col, ref)
        else:
            fq = _numerical_quality(name, np.asarray(col, dtype=np.float64), ref)
        results.append(fq)
        issues.extend(_issues(fq, t))
    wanted = set(names)
    extra = tuple(n for n in current.names if n not in wanted)
    return DataQualityReport(
        rows=current.n_rows,
        reference_rows=ref_rows,
        features=tuple(results),
        missing_columns=tuple(missing_cols),
        extra_columns=extra,
        issues=tuple(issues),
        thresholds=t,
    )
