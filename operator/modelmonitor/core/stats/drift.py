"""Per-feature drift analysis of a current window against a reference: :func:`analyze`.

The reference is a :class:`~modelmonitor.core.stats.profile.ReferenceProfile` (precomputed,
so a run costs O(current window)) or a raw :class:`~modelmonitor.core.dataset.Dataset`,
which is profiled first. Prediction drift uses the same call: model outputs are just
columns (class probabilities and regression values numerical, labels categorical).

The ``auto`` rule (per feature)
-------------------------------
With n_ref, n_cur the valid values and ``n_eff = n_ref n_cur / (n_ref + n_cur)``:

* numerical: ``ks`` (alpha 0.05) when the reference is an exact sample and
  n_eff <= 1,000; otherwise ``wasserstein`` normed by the reference std.
* categorical (counts are always exact): when n_eff <= 1,000 a test - with at most two
  categories in the union of both samples, ``fisher`` if the smallest expected cell
  count of the 2 x 2 table is below 5 (the z approximation is poor there), else
  ``ztest``; with more categories ``chi2``. Otherwise ``jensenshannon``.
* a distance picked by ``auto`` (and no explicit ``threshold``) uses
  ``max(default threshold, noise floor at n_eff)``: the value the distance exceeds in
  about 1% of windows of that size without any shift (:func:`noise_floor`). With
  n_eff >= ~1,250 the floor is below the default and changes nothing.

Why: a test's p-value measures evidence, not size. At moderate sizes it is the right
tool (a distance's own sampling noise is then as large as the shifts we look for: the
normed Wasserstein distance of 500 rows without any shift exceeds 0.1 in about 5% of
windows), but at n_eff = 10^5 a KS test flags a shift of 0.01 standard deviations that
no one would act on, so large samples are judged by a unit-free distance with a
threshold that means something ("the mass moved by a tenth of a standard deviation").
n_eff is what sets a two-sample test's power, so it is the size that decides; with
n_ref <= 1,000 (Evidently's cut, and the profile's default ``exact_limit``) it is always
<= 1,000. P-values are only computed on exact samples, because a sketch's rank error
alone exceeds a KS critical value at large n: on a summarised (sketched) reference
``auto`` always picks a distance, and the noise floor keeps small current windows from
raising false alarms there.

Missing values and infinities
-----------------------------
NaN (numerical) and missing codes (categorical) are dropped and counted, +/-inf are
dropped and counted apart; counts of both samples go into each :class:`FeatureDrift`.
A feature whose valid values are fewer than the method needs (e.g. an empty window)
gets ``status="insufficient_data"``, ``drifted=False`` and a ``reason``; a feature
absent from the current data gets ``status="missing_column"``, a numerical feature whose
current column holds categories ``status="type_mismatch"`` (data quality reports both).
None of them counts towards ``total_features``.

Correction and dataset drift
----------------------------
Only test features enter the multiple-testing correction (see
:mod:`modelmonitor.core.stats.correction`); the data set drifts when
``drifted_features / total_features >= drift_share``.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

import numpy as np

from modelmonitor.core.dataset import CategoricalColumn, Dataset, Feature, FeatureType
from modelmonitor.core.stats import window_methods
from modelmonitor.core.stats.categorical import align
from modelmonitor.core.stats.column_profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericalProfile,
    as_categorical,
    as_numerical,
    profile_column,
)
from modelmonitor.core.stats.correction import adjust_pvalues, validate_correction
from modelmonitor.core.stats.errors import DegenerateInputWarning
from modelmonitor.core.stats.methods import (
    AUTO,
    DEFAULT_ALPHA,
    MethodKind,
    MethodSpec,
    get_method,
    validate_method_name,
)
from modelmonitor.core.stats.noise_floor import (
    AUTO_NOISE_QUANTILE,
    AUTO_WASSERSTEIN_NOISE,
    noise_floor,
    noise_floor_bound,
)
from modelmonitor.core.stats.numerical import HIST_BINS, require_exact
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.results import TestResult

#: Largest reference (valid values) for which ``auto`` picks a test with a p-value.
AUTO_TEST_MAX_N = 1000
#: Smallest expected 2 x 2 cell count for which ``auto`` trusts the z-test over Fisher.
AUTO_FISHER_MIN_EXPECTED = 5.0

FeatureStatus: TypeAlias = Literal["ok", "insufficient_data", "missing_column", "type_mismatch"]

__all__ = [
    "AUTO_NOISE_QUANTILE",
    "AUTO_TEST_MAX_N",
    "AUTO_WASSERSTEIN_NOISE",
    "DatasetDrift",
    "DriftReport",
    "FeatureDrift",
    "analyze",
    "choose_method",
    "noise_floor",
    "noise_floor_bound",
]


def _json_float(x: float | None) -> float | None:
    """JSON has no inf/NaN: NaN -> None, +/-inf -> +/- the largest float."""
    if x is None or math.isnan(x):
        return None
    if math.isinf(x):
        return math.copysign(sys.float_info.max, x)
    return float(x)


@dataclass(frozen=True)
class FeatureDrift:
    """The drift verdict for one feature."""

    name: str
    type: FeatureType
    method: str
    """The method used (``auto`` resolved to the concrete one)."""
    kind: MethodKind
    statistic: float | None
    """None only when the feature was not evaluated (status other than ok)."""
    p_value: float | None
    """Raw p-value for tests, None for distances."""
    threshold: float
    """alpha for tests, the distance threshold for distances."""
    drifted: bool
    status: FeatureStatus = "ok"
    reason: str | None = None
    p_value_adjusted: float | None = None
    """p-value after the multiple-testing correction (tests only); drift when < alpha."""
    n_reference: int = 0
    """Valid (finite / non-missing) reference values used."""
    n_current: int = 0
    reference_missing: int = 0
    current_missing: int = 0
    reference_inf: int = 0
    current_inf: int = 0
    approximate: bool = False
    """True when the statistic was read from a sketch of the current window (a
    partitioned window past its exact limit); see docs/statistics.md for the error."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "method": self.method,
            "statistic": _json_float(self.statistic),
            "p_value": _json_float(self.p_value),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "p_value_adjusted": _json_float(self.p_value_adjusted),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "reference_missing": self.reference_missing,
            "current_missing": self.current_missing,
            "reference_inf": self.reference_inf,
            "current_inf": self.current_inf,
            "approximate": self.approximate,
        }


@dataclass(frozen=True)
class DatasetDrift:
    """The data set verdict: drifted when ``share >= drift_share``."""

    drifted: bool
    share: float
    drifted_features: int
    total_features: int
    """Features evaluated (status ok); skipped ones are not counted."""
    drift_share: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted,
            "share": self.share,
            "drifted_features": self.drifted_features,
            "total_features": self.total_features,
            "drift_share": self.drift_share,
        }


@dataclass(frozen=True)
class DriftReport:
    """What :func:`analyze` returns; ``to_dict()`` is the report shape docs/cli.md documents."""

    dataset: DatasetDrift
    features: tuple[FeatureDrift, ...]
    method: str = AUTO
    correction: str = "bonferroni"
    alpha: float = DEFAULT_ALPHA
    skipped: tuple[str, ...] = field(default=())
    """Names of features not evaluated (insufficient data or missing column)."""

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.to_dict(),
            "features": [f.to_dict() for f in self.features],
            "method": self.method,
            "correction": self.correction,
            "alpha": self.alpha,
        }


# --- method choice ------------------------------------------------------------------------
def effective_n(n_reference: int, n_current: int) -> float:
    """n_ref n_cur / (n_ref + n_cur): the sample size that sets a two-sample test's power."""
    total = n_reference + n_current
    return n_reference * n_current / total if n_reference > 0 and n_current > 0 else 0.0


def _n_valid(current: Any) -> int | None:
    if current is None:
        return None
    if isinstance(current, CategoricalColumn):
        return int(np.count_nonzero(current.codes >= 0))
    return int(np.count_nonzero(np.isfinite(np.asarray(current, dtype=np.float64))))


def choose_method(
    profile: ColumnProfile, current: Any = None, *, n_current: int | None = None
) -> str:
    """The ``auto`` method for one feature (rule in the module docstring).

    ``current`` is the current column (valid values suffice; ``n_current`` saves
    counting them); without it the reference's size alone decides (n_eff = n_ref).
    """
    n_cur = n_current if n_current is not None else _n_valid(current)
    n_eff = profile.n if n_cur is None else effective_n(profile.n, n_cur)
    if isinstance(profile, NumericalProfile):
        return "ks" if profile.exact and n_eff <= AUTO_TEST_MAX_N else "wasserstein"
    if n_eff > AUTO_TEST_MAX_N or (isinstance(current, CategoricalProfile) and not current.exact):
        # a sketched window's counts are estimates: no test (window_methods' docstring)
        return "jensenshannon"
    if current is None:
        return "chi2"
    _, r, c = align(profile, current)
    if r.shape[0] > 2:
        return "chi2"
    if r.shape[0] < 2:
        return "ztest"
    table = np.stack([r, c])
    total = table.sum()
    if total == 0:
        return "ztest"
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / total
    return "fisher" if float(expected.min()) < AUTO_FISHER_MIN_EXPECTED else "ztest"


def _auto_threshold(spec: MethodSpec, ref: ColumnProfile, cur: _Prepared, default: float) -> float:
    n_eff = effective_n(ref.n, cur.n_valid)
    if isinstance(ref, NumericalProfile):
        n_bins = ref.bin_edges(HIST_BINS).shape[0] + 1
    else:  # categories of either sample (labels only: no pass over the rows)
        seen = {k for k, v in ref.estimated_counts().items() if v > 0}
        if isinstance(cur.values, CategoricalProfile):
            labels: Any = [k for k, v in cur.values.estimated_counts().items() if v > 0]
        else:
            labels = cur.values.categories
        n_bins = len(seen.union(labels))
    if noise_floor_bound(spec.name, n_eff, n_bins) <= default:
        return default  # the exact floor is lower still
    return max(default, noise_floor(spec.name, n_eff, n_bins))


# --- validation -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Options:
    method: str
    methods: Mapping[str, str]
    threshold: float | None
    thresholds: Mapping[str, float | None]
    alpha: float
    correction: str
    drift_share: float

    def for_feature(self, name: str) -> tuple[str, float | None]:
        """The method requested for one feature and its threshold (see :func:`analyze`):
        ``threshold`` belongs to ``method``, so a feature given another method takes
        that method's defaults unless ``thresholds`` names it."""
        method = self.methods.get(name, self.method)
        if name in self.thresholds:
            return method, self.thresholds[name]
        return method, self.threshold if method == self.method else None


def _validate_options(
    method: str,
    methods: Mapping[str, str] | None,
    threshold: float | None,
    thresholds: Mapping[str, float | None] | None,
    alpha: float,
    correction: str,
    drift_share: float,
) -> _Options:
    validate_method_name(method)
    for m in (methods or {}).values():
        validate_method_name(m)
    validate_correction(correction)
    for t in (threshold, *(thresholds or {}).values()):
        if t is not None and not (math.isfinite(t) and t >= 0):
            raise ValueError(f"threshold must be a finite number >= 0, got {t!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not 0.0 < drift_share <= 1.0:
        raise ValueError(f"drift_share must lie in (0, 1], got {drift_share!r}")
    return _Options(
        method,
        dict(methods or {}),
        threshold,
        dict(thresholds or {}),
        alpha,
        correction,
        drift_share,
    )


def _resolve_features(
    reference: Dataset | ReferenceProfile, features: Sequence[Feature] | None
) -> list[Feature]:
    if features is None:
        return (
            reference.features
            if isinstance(reference, ReferenceProfile)
            else reference.inferred_features()
        )
    feats = list(features)
    names = [f.name for f in feats]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"features listed twice: {', '.join(map(repr, dupes))}")
    missing = [n for n in names if n not in reference]
    if missing:
        raise ValueError(f"reference has no feature(s) {', '.join(map(repr, missing))}")
    if isinstance(reference, ReferenceProfile):
        for f in feats:
            if reference[f.name].type != f.type:
                raise ValueError(
                    f"feature {f.name!r} is declared {f.type} but the reference profile "
                    f"holds it as {reference[f.name].type}"
                )
    return feats


# --- one feature ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Prepared:
    values: Any
    n_valid: int
    n_missing: int
    n_inf: int


def _prepare_current(feature: Feature, column: Any) -> _Prepared:
    if isinstance(column, NumericalProfile):  # a window profile: its exact sample if kept
        values: Any = column.values if column.exact else column
        return _Prepared(values, column.n, column.n_missing, column.n_inf)
    if isinstance(column, CategoricalProfile):
        return _Prepared(column, column.n, column.n_missing, 0)
    if feature.type == "numerical":
        arr = as_numerical(feature.name, column)
        finite = np.isfinite(arr)
        if finite.all():
            return _Prepared(arr, arr.shape[0], 0, 0)
        valid = arr[finite]
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        return _Prepared(valid, valid.shape[0], n_nan, arr.shape[0] - valid.shape[0] - n_nan)
    col: CategoricalColumn = as_categorical(column)
    n_missing = int(np.count_nonzero(col.codes < 0))
    return _Prepared(col, len(col) - n_missing, n_missing, 0)


def _ref_counts(ref: ColumnProfile) -> tuple[int, int, int]:
    if isinstance(ref, NumericalProfile):
        return ref.n, ref.n_missing, ref.n_inf
    return ref.n, ref.n_missing, 0


def _mismatched(feature: Feature, column: Any) -> bool:
    if isinstance(column, NumericalProfile | CategoricalProfile):
        return column.type != feature.type
    return feature.type == "numerical" and isinstance(column, CategoricalColumn)


def _feature_drift(
    feature: Feature, ref: ColumnProfile, current: Dataset | ReferenceProfile, opts: _Options
) -> tuple[FeatureDrift, MethodSpec | None]:
    n_ref, ref_missing, ref_inf = _ref_counts(ref)
    requested, own_threshold = opts.for_feature(feature.name)
    column = current.columns.get(feature.name)
    if column is None or _mismatched(feature, column):
        name = requested if requested != AUTO else choose_method(ref)
        spec = get_method(name, feature.type, feature=feature.name)
        status: FeatureStatus = "missing_column" if column is None else "type_mismatch"
        reason = (
            "column missing from the current data"
            if column is None
            else "numerical in the reference, categorical in the current data"
            if feature.type == "numerical"
            else "categorical in the reference, numerical in the current data"
        )
        threshold = _threshold(spec, requested, own_threshold, opts.alpha)
        return FeatureDrift(
            feature.name, feature.type, spec.name, spec.kind, None, None, threshold, False,
            status, reason, None, n_ref, 0, ref_missing, 0, ref_inf, 0,
        ), None  # fmt: skip
    cur = _prepare_current(feature, column)
    name = requested if requested != AUTO else choose_method(ref, cur.values, n_current=cur.n_valid)
    spec = get_method(name, feature.type, feature=feature.name)
    threshold = _threshold(spec, requested, own_threshold, opts.alpha)
    if requested == AUTO and spec.kind == "distance" and own_threshold is None:
        threshold = _auto_threshold(spec, ref, cur, threshold)

    def make(
        statistic: float | None,
        p_value: float | None,
        drifted: bool,
        status: FeatureStatus = "ok",
        reason: str | None = None,
    ) -> FeatureDrift:
        return FeatureDrift(
            feature.name, feature.type, spec.name, spec.kind, statistic, p_value, threshold,
            drifted, status, reason, None, n_ref, cur.n_valid, ref_missing, cur.n_missing,
            ref_inf, cur.n_inf,
        )  # fmt: skip

    if spec.needs_exact and isinstance(ref, NumericalProfile):
        require_exact(ref, spec.name)  # a configuration error: raises ValueError
    if n_ref < spec.min_n or cur.n_valid < spec.min_n:
        reason = (
            f"{spec.name} needs at least {spec.min_n} valid value(s) per sample; "
            f"reference has {n_ref}, current {cur.n_valid}"
        )
        return make(None, None, False, "insufficient_data", reason), None
    approximate = window_methods.approximate(spec.name, spec.kind, cur.values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        if isinstance(cur.values, NumericalProfile) and isinstance(ref, NumericalProfile):
            result = window_methods.run(spec.name, ref, cur.values)
        else:
            result = spec.func(ref, cur.values)
    p_value = result.pvalue if isinstance(result, TestResult) else None
    if math.isnan(result.statistic) or (p_value is not None and math.isnan(p_value)):
        # a guard: every method defines its degenerate cases, but NaN must never vote
        reason = f"{spec.name} is undefined for this data (degenerate input)"
        return make(None, None, False, "insufficient_data", reason), None
    if p_value is not None:  # drifted once the correction is applied (analyze)
        fd = make(result.statistic, p_value, False)
    else:
        fd = make(result.statistic, None, result.statistic >= threshold)
    return (replace(fd, approximate=True) if approximate else fd), spec


def _threshold(spec: MethodSpec, requested: str, threshold: float | None, alpha: float) -> float:
    """A test named for the feature takes ``threshold`` as its level; one ``auto`` picked
    keeps ``alpha``. A distance takes ``threshold``, else its default."""
    if spec.kind == "test":
        return threshold if requested != AUTO and threshold is not None else alpha
    return threshold if threshold is not None else spec.default_threshold


# --- the entry point ------------------------------------------------------------------------
def analyze(
    reference: Dataset | ReferenceProfile,
    current: Dataset | ReferenceProfile,
    *,
    features: Sequence[Feature] | None = None,
    method: str = AUTO,
    methods: Mapping[str, str] | None = None,
    threshold: float | None = None,
    thresholds: Mapping[str, float | None] | None = None,
    alpha: float = DEFAULT_ALPHA,
    correction: str = "bonferroni",
    drift_share: float = 0.5,
) -> DriftReport:
    """Compare ``current`` with ``reference`` feature by feature.

    Parameters
    ----------
    current
        The window's rows, or a partitioned window's merged profile: sketched columns
        give ``approximate`` statistics (:mod:`modelmonitor.core.stats.window_methods`).
    reference
        A saved/precomputed profile, or raw data. Raw data is profiled here one column at
        a time with its exact sorted sample (no sketch), so results on raw data are exact
        and deterministic; ``auto`` still switches to distances above 1,000 values.
    features
        Which features, with their types; default: all reference features.
    method
        ``auto`` or one method name for every feature (see
        :data:`~modelmonitor.core.stats.methods.METHOD_NAMES`); ``methods`` overrides it
        per feature name (a feature given another method than ``method`` does not take
        ``threshold``: its method's defaults apply unless ``thresholds`` names it).
    threshold
        With an explicit method: its threshold (for a test, the significance level).
        With ``auto``: the threshold of the distance methods it picks; tests use
        ``alpha``. None: per-method defaults.
    thresholds
        Per feature name, the ``threshold`` for that feature (same meaning, judged by the
        feature's own method); a name mapped to None takes the per-method defaults.
    alpha
        Significance level of the tests (after correction).
    correction
        ``bonferroni``, ``fdr`` (Benjamini-Hochberg) or ``none``; over the test features.
    drift_share
        The data set drifts when at least this share of evaluated features drifted.
    """
    opts = _validate_options(method, methods, threshold, thresholds, alpha, correction, drift_share)
    feats = _resolve_features(reference, features)
    results: list[FeatureDrift] = []
    tests: list[int] = []
    for f in feats:
        if isinstance(reference, ReferenceProfile):
            ref = reference[f.name]
        else:
            # profiled one column at a time, keeping the exact sample: deterministic,
            # exact, and the extra memory is one sorted column
            ref = profile_column(f, reference[f.name], exact_limit=None)
        fd, spec = _feature_drift(f, ref, current, opts)
        if spec is not None and spec.kind == "test":
            tests.append(len(results))
        results.append(fd)

    if tests:
        pvals = [results[i].p_value for i in tests]
        adjusted = adjust_pvalues([p for p in pvals if p is not None], opts.correction)
        for i, p_adj in zip(tests, adjusted.tolist(), strict=True):
            fd = results[i]
            results[i] = _replace(fd, p_value_adjusted=p_adj, drifted=p_adj < fd.threshold)

    evaluated = [r for r in results if r.status == "ok"]
    n_drifted = sum(r.drifted for r in evaluated)
    share = n_drifted / len(evaluated) if evaluated else 0.0
    dataset = DatasetDrift(
        drifted=bool(evaluated) and share >= opts.drift_share,
        share=share,
        drifted_features=n_drifted,
        total_features=len(evaluated),
        drift_share=opts.drift_share,
    )
    return DriftReport(
        dataset,
        tuple(results),
        method=opts.method,
        correction=opts.correction,
        alpha=opts.alpha,
        skipped=tuple(r.name for r in results if r.status != "ok"),
    )


def _replace(fd: FeatureDrift, **changes: Any) -> FeatureDrift:
    return replace(fd, **changes)
