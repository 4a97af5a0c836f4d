"""One column's summary: exact or sketched numerical profiles, exact categorical counts.

See :mod:`modelmonitor.core.stats.profile` for what a profile holds, why these limits,
and how profiles merge; this module is the per-column half, the reference profile the
per-data-set half.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from datasketches import frequent_items_error_type, frequent_strings_sketch, kll_doubles_sketch

from modelmonitor.core.dataset import CategoricalColumn, Column, Feature, FloatArray

DEFAULT_EXACT_LIMIT = 1000
DEFAULT_SKETCH_K = 200
#: Number of equal-mass points that stand for a sketched reference in distance methods.
QUANTILE_GRID_SIZE = 1000
#: PSI bins (reference deciles); saved in the profile's readable ``summary``.
PSI_BINS = 10
#: log2 of the frequent-items sketch's map size: 4,096 slots, 3,072 counters. Each
#: estimated count is within ``epsilon * n`` of the true count, epsilon = 3.5 / 4,096
#: = 0.085% (Apache DataSketches' a-priori bound for this size).
FREQUENT_LG_MAX = 12
#: A sketched column lists a label when its count's lower bound is at least this many
#: times the sketch's largest error (so each listed count is within 10%).
LISTED_ERROR_MULTIPLE = 10
#: Label of the bucket that collects the weight a frequent-items sketch does not list.
OTHER_CATEGORIES = "(other categories)"


def _encode_floats(values: FloatArray) -> str:
    """float64 -> byte-shuffled, zlib-compressed, base64 text (lossless)."""
    raw = np.ascontiguousarray(values, dtype="<f8").view(np.uint8).reshape(-1, 8)
    return base64.b64encode(zlib.compress(raw.T.tobytes(), 9)).decode("ascii")


def _decode_floats(text: str, n: int) -> FloatArray:
    return decode_floats(base64.b64decode(text), n)


def decode_floats(packed: bytes, n: int) -> FloatArray:
    """Inverse of :func:`_encode_floats`; inflates at most ``8 * n`` bytes (no zlib bomb)."""
    if n < 0:
        raise ValueError(f"negative count {n}")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(packed, 8 * n + 1) if n else inflater.decompress(packed, 1)
    except zlib.error as exc:
        raise ValueError(f"not zlib-compressed floats ({exc})") from None
    if len(data) != 8 * n or inflater.unconsumed_tail:
        raise ValueError(f"does not hold exactly {n} values")
    raw = np.frombuffer(data, dtype=np.uint8)
    out = raw.reshape(8, n).T.copy().view("<f8").reshape(n)
    return out.astype(np.float64, copy=False)


def _float_or_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _none_to_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


@dataclass(frozen=True, eq=False)
class NumericalProfile:
    """Summary of one numerical reference column (see the module docstring)."""

    name: str
    n: int
    """Number of finite values (the ones every statistic uses)."""
    n_missing: int
    n_pos_inf: int
    n_neg_inf: int
    min: float
    max: float
    mean: float
    m2: float
    """Sum of squared deviations from the mean over the finite values."""
    values: FloatArray | None
    """The sorted finite values when ``n <= exact_limit``, else None."""
    sketch: bytes | None
    """Serialised KLL sketch of the finite values when ``values`` is None."""
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    type: Literal["numerical"] = field(default="numerical", init=False)

    # --- construction -------------------------------------------------------------
    @classmethod
    def from_values(
        cls,
        name: str,
        values: npt.ArrayLike,
        *,
        exact_limit: int | None = DEFAULT_EXACT_LIMIT,
        sketch_k: int = DEFAULT_SKETCH_K,
    ) -> NumericalProfile:
        """Profile an array of values; NaN counts as missing, +/-inf are counted apart."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        finite_mask = np.isfinite(arr)
        finite = arr[finite_mask]
        n = int(finite.shape[0])
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        n_pos = int(np.count_nonzero(arr == np.inf))
        n_neg = int(arr.shape[0] - n - n_nan - n_pos)
        if n:
            mean = float(finite.mean())
            m2 = float(np.square(finite - mean).sum())
            lo, hi = float(finite.min()), float(finite.max())
        else:
            mean = m2 = lo = hi = math.nan
            m2 = 0.0
        if exact_limit is None or n <= exact_limit:
            return cls(name, n, n_nan, n_pos, n_neg, lo, hi, mean, m2, np.sort(finite), None)
        sk = kll_doubles_sketch(sketch_k)
        # sorted input updates the sketch ~4x faster (its compactions sort runs that are
        # then already sorted); KLL's error guarantee holds for any input order
        sk.update(np.sort(finite))
        return cls(name, n, n_nan, n_pos, n_neg, lo, hi, mean, m2, None, sk.serialize())

    # --- basic properties ---------------------------------------------------------
    @property
    def exact(self) -> bool:
        """True when the profile holds the exact sorted sample (p-value methods allowed)."""
        return self.values is not None

    @property
    def n_total(self) -> int:
        return self.n + self.n_missing + self.n_pos_inf + self.n_neg_inf

    @property
    def n_inf(self) -> int:
        return self.n_pos_inf + self.n_neg_inf

    @property
    def missing_share(self) -> float:
        return self.n_missing / self.n_total if self.n_total else 0.0

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1) of the finite values; NaN below two values."""
        return self.m2 / (self.n - 1) if self.n > 1 else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0): the scale that norms distances."""
        return math.sqrt(max(self.m2, 0.0) / self.n) if self.n else math.nan

    @property
    def iqr(self) -> float:
        if not self.n:
            return math.nan
        q1, q3 = self.quantiles(np.array([0.25, 0.75]))
        return float(q3 - q1)

    def _kll(self) -> Any:
        sk = self._cache.get("kll")
        if sk is None:
            assert self.sketch is not None
            sk = self._cache["kll"] = kll_doubles_sketch.deserialize(self.sketch)
        return sk

    # --- distribution queries -------------------------------------------------------
    def quantiles(self, q: npt.ArrayLike) -> FloatArray:
        """Quantiles (linear interpolation on an exact sample, sketch quantiles otherwise)."""
        qs = np.asarray(q, dtype=np.float64)
        if self.n == 0:
            return np.full(qs.shape, math.nan)
        if self.values is not None:
            return np.asarray(np.quantile(self.values, qs), dtype=np.float64)
        return np.asarray(self._kll().get_quantiles(qs.ravel().tolist()), np.float64).reshape(
            qs.shape
        )

    def cdf(self, x: npt.ArrayLike) -> FloatArray:
        """Share of finite reference values <= each x (sketch: within its rank error)."""
        xs = np.asarray(x, dtype=np.float64)
        if self.n == 0:
            return np.zeros(xs.shape)
        if self.values is not None:
            return np.searchsorted(self.values, xs, side="right") / self.n
        flat = xs.ravel()
        order = np.argsort(flat)
        # the sketch wants strictly increasing split points
        uniq, inverse = np.unique(flat[order], return_inverse=True)
        if uniq.size == 0:
            return np.zeros(xs.shape)
        cum = np.asarray(self._kll().get_cdf(uniq.tolist(), True), dtype=np.float64)[:-1]
        out = np.empty_like(flat)
        out[order] = cum[inverse]
        # exact at the extremes, which the sketch knows
        out[flat < self.min] = 0.0
        out[flat >= self.max] = 1.0
        return out.reshape(xs.shape)

    def support(self) -> tuple[FloatArray, FloatArray]:
        """Sorted points and their probability masses standing for the reference.

        Exact sample: every value with mass 1/n. Sketch: :data:`QUANTILE_GRID_SIZE`
        quantiles at mid-ranks, each with equal mass (the quantile function of the
        sketch, discretised).
        """
        cached = self._cache.get("support")
        if cached is None:
            pts: FloatArray
            w: FloatArray
            if self.values is not None:
                pts = self.values
                w = np.full(pts.shape[0], 1.0 / max(self.n, 1))
            else:
                g = QUANTILE_GRID_SIZE
                pts = np.sort(self.quantiles((np.arange(g) + 0.5) / g))
                w = np.full(g, 1.0 / g)
            cached = self._cache["support"] = (pts, w)
        pts, w = cached
        return pts, w

    def bin_edges(self, n_bins: int) -> FloatArray:
        """Interior edges of ``n_bins`` reference-quantile bins (ties merged).

        Edge i is the smallest reference value with CDF >= i / n_bins (``inverted_cdf``
        quantiles; for a sketch, its quantile at that rank).

        Bins are ``(-inf, e0], (e0, e1], ..., (e_last, inf)``, so every current value,
        however far out, falls in a bin.
        """
        key = ("edges", n_bins)
        edges = self._cache.get(key)
        if edges is None:
            ranks = np.arange(1, n_bins) / n_bins
            if self.values is not None and self.n:
                # edges are reference values (no interpolation), like the sketch's
                # quantiles: bin membership then survives shifting/scaling exactly
                inner = np.quantile(self.values, ranks, method="inverted_cdf")
            else:
                inner = self.quantiles(ranks)
            edges = self._cache[key] = np.unique(inner[np.isfinite(inner)])
        return np.asarray(edges)

    def bin_proportions(self, n_bins: int) -> tuple[FloatArray, FloatArray]:
        """(edges, reference proportions) for :meth:`bin_edges` ``(n_bins)``."""
        key = ("props", n_bins)
        cached = self._cache.get(key)
        if cached is None:
            edges = self.bin_edges(n_bins)
            if self.values is not None:  # exact counts, like the current window's
                below = np.searchsorted(self.values, edges, side="right")
                counts = np.diff(np.concatenate([[0], below, [self.n]]))
                props = counts / max(self.n, 1)
            else:
                cum = np.concatenate([[0.0], self.cdf(edges), [1.0]])
                props = np.clip(np.diff(cum), 0.0, None)
                total = props.sum()
                props = props / total if total > 0 else props
            cached = self._cache[key] = (edges, props)
        edges, props = cached
        return edges, props

    # --- merge / serialisation ----------------------------------------------------
    def merge(
        self, other: NumericalProfile, *, exact_limit: int | None, sketch_k: int
    ) -> NumericalProfile:
        if other.name != self.name:
            raise ValueError(f"cannot merge profiles of {self.name!r} and {other.name!r}")
        n = self.n + other.n
        if self.n == 0:
            mean, m2, lo, hi = other.mean, other.m2, other.min, other.max
        elif other.n == 0:
            mean, m2, lo, hi = self.mean, self.m2, self.min, self.max
        else:
            delta = other.mean - self.mean
            mean = self.mean + delta * other.n / n
            m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
            lo, hi = min(self.min, other.min), max(self.max, other.max)
        counts = (
            self.n_missing + other.n_missing,
            self.n_pos_inf + other.n_pos_inf,
            self.n_neg_inf + other.n_neg_inf,
        )
        if (
            self.values is not None
            and other.values is not None
            and (exact_limit is None or n <= exact_limit)
        ):
            merged = np.sort(np.concatenate([self.values, other.values]))
            return NumericalProfile(self.name, n, *counts, lo, hi, mean, m2, merged, None)
        sk = kll_doubles_sketch(sketch_k)
        for part in (self, other):
            if part.values is not None:
                if part.values.size:
                    sk.update(part.values)
            else:
                sk.merge(part._kll())
        return NumericalProfile(self.name, n, *counts, lo, hi, mean, m2, None, sk.serialize())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": "numerical",
            "n": self.n,
            "n_missing": self.n_missing,
            "n_pos_inf": self.n_pos_inf,
            "n_neg_inf": self.n_neg_inf,
            "min": _float_or_none(self.min),
            "max": _float_or_none(self.max),
            "mean": _float_or_none(self.mean),
            "m2": self.m2,
        }
        if self.values is not None:
            out["values"] = _encode_floats(self.values)
        else:
            assert self.sketch is not None
            out["sketch"] = base64.b64encode(self.sketch).decode("ascii")
        out["summary"] = self.summary()
        return out

    def summary(self) -> dict[str, Any]:
        """Derived, human-readable statistics saved alongside the data (not needed to load).

        ``std`` (ddof 0), ``iqr``, ``quartiles`` and the PSI bins: ``bin_edges`` (reference
        deciles, ties merged) with the reference ``bin_proportions`` - the fixed bins a run
        uses for PSI.
        """
        if self.n == 0:
            return {"std": None, "iqr": None, "quartiles": [], "bin_edges": [],
                    "bin_proportions": []}  # fmt: skip
        edges, props = self.bin_proportions(PSI_BINS)
        return {
            "std": self.std,
            "iqr": self.iqr,
            "quartiles": self.quantiles(np.array([0.25, 0.5, 0.75])).tolist(),
            "bin_edges": edges.tolist(),
            "bin_proportions": props.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericalProfile:
        n = int(d["n"])
        values = _decode_floats(d["values"], n) if "values" in d else None
        sketch = base64.b64decode(d["sketch"]) if values is None else None
        if values is None and sketch is None:
            raise ValueError(f"profile column {d['name']!r} has neither values nor sketch")
        return cls(
            str(d["name"]),
            n,
            int(d["n_missing"]),
            int(d["n_pos_inf"]),
            int(d["n_neg_inf"]),
            _none_to_nan(d["min"]),
            _none_to_nan(d["max"]),
            _none_to_nan(d["mean"]),
            float(d["m2"]),
            values,
            sketch,
        )


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Category counts of one categorical column: exact, or a frequent-items sketch.

    Exact (``frequent`` is None): a count per label. A profile built with a category cap
    (the current window's profiles, :mod:`modelmonitor.core.stats.partitions`) turns into
    a frequent-items sketch (``frequent``, Apache DataSketches' ``frequent_strings_sketch``)
    once its labels outnumber the cap: the counts are then estimates, each within
    ``epsilon * n`` (:data:`FREQUENT_LG_MAX`), while ``n`` and ``n_missing`` stay exact.
    """

    name: str
    counts: Mapping[str, int]
    """Count per category label, in first-seen order; categories with count 0 kept.
    Empty when the profile is sketched."""
    n_missing: int
    frequent: bytes | None = None
    """Serialised frequent-items sketch when the labels outgrew the category cap."""
    type: Literal["categorical"] = field(default="categorical", init=False)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_column(
        cls, name: str, column: Column, *, category_cap: int | None = None
    ) -> CategoricalProfile:
        col = as_categorical(column)
        valid = col.codes[col.codes >= 0]
        counts = np.bincount(valid, minlength=len(col.categories))
        prof = cls(
            name,
            dict(zip(col.categories, (int(c) for c in counts), strict=True)),
            int(col.codes.shape[0] - valid.shape[0]),
        )
        return prof.capped(category_cap)

    @property
    def sketched(self) -> bool:
        return self.frequent is not None

    def _sketch(self) -> Any:
        sk = self._cache.get("frequent")
        if sk is None:
            assert self.frequent is not None
            sk = self._cache["frequent"] = frequent_strings_sketch.deserialize(self.frequent)
        return sk

    @property
    def n(self) -> int:
        """Number of non-missing values (exact, sketched or not)."""
        if self.frequent is not None:
            return int(self._sketch().total_weight)
        return sum(self.counts.values())

    @property
    def n_total(self) -> int:
        return self.n + self.n_missing

    @property
    def missing_share(self) -> float:
        return self.n_missing / self.n_total if self.n_total else 0.0

    @property
    def exact(self) -> bool:
        """True unless the counts are a sketch's estimates."""
        return self.frequent is None

    @property
    def count_error(self) -> float:
        """Largest error of any one count: 0 when exact, ``epsilon * n`` when sketched."""
        if self.frequent is None:
            return 0.0
        return float(self._sketch().epsilon) * self.n

    def estimated_counts(self) -> dict[str, int]:
        """Counts per label; for a sketch, its estimates of the labels it lists (those
        whose count is known within 10%, :data:`LISTED_ERROR_MULTIPLE`), and the weight
        it does not list under :data:`OTHER_CATEGORIES` (so they sum to ``n``)."""
        if self.frequent is None:
            return dict(self.counts)
        cached = self._cache.get("estimated")
        if cached is None:
            # only labels whose count is known to within a tenth: a lower bound of at
            # least ten times the sketch's largest error (no false positives)
            floor = math.ceil(LISTED_ERROR_MULTIPLE * self.count_error)
            items = self._sketch().get_frequent_items(
                frequent_items_error_type.NO_FALSE_POSITIVES, floor
            )
            cached = {str(item): int(est) for item, est, _lo, _hi in items}
            rest = self.n - sum(cached.values())
            if rest > 0:
                cached[OTHER_CATEGORIES] = rest
            self._cache["estimated"] = cached
        return dict(cached)

    def capped(self, category_cap: int | None) -> CategoricalProfile:
        """This profile, turned into a frequent-items sketch when its labels exceed the cap."""
        if category_cap is None or self.frequent is not None:
            return self
        if sum(1 for v in self.counts.values() if v > 0) <= category_cap:
            return self
        sk = frequent_strings_sketch(FREQUENT_LG_MAX)
        for label, count in self.counts.items():
            if count > 0:
                sk.update(label, count)
        return CategoricalProfile(self.name, {}, self.n_missing, sk.serialize())

    def merge(
        self, other: CategoricalProfile, *, category_cap: int | None = None
    ) -> CategoricalProfile:
        if other.name != self.name:
            raise ValueError(f"cannot merge profiles of {self.name!r} and {other.name!r}")
        missing = self.n_missing + other.n_missing
        if self.frequent is None and other.frequent is None:
            counts = dict(self.counts)
            for k, v in other.counts.items():
                counts[k] = counts.get(k, 0) + v
            return CategoricalProfile(self.name, counts, missing).capped(category_cap)
        sk = frequent_strings_sketch(FREQUENT_LG_MAX)
        for part in (self, other):
            if part.frequent is not None:
                sk.merge(part._sketch())
            else:
                for label, count in part.counts.items():
                    if count > 0:
                        sk.update(label, count)
        return CategoricalProfile(self.name, {}, missing, sk.serialize())

    def to_dict(self, *, sketched: bool = False) -> dict[str, Any]:
        """The JSON form; a frequent-items sketch only with ``sketched`` (a window's partial
        profile on its way to be merged, never a saved reference profile)."""
        if self.frequent is not None and sketched:
            return {
                "name": self.name,
                "type": "categorical",
                "frequent": base64.b64encode(self.frequent).decode("ascii"),
                "n_missing": self.n_missing,
            }
        if self.frequent is not None:
            raise ValueError(
                f"profile column {self.name!r} holds a frequent-items sketch: only exact "
                "category counts are saved (build reference profiles without a category cap)"
            )
        return {
            "name": self.name,
            "type": "categorical",
            "categories": list(self.counts),
            "counts": list(self.counts.values()),
            "n_missing": self.n_missing,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalProfile:
        if "frequent" in d:
            frequent = base64.b64decode(str(d["frequent"]), validate=True)
            return cls(str(d["name"]), {}, int(d["n_missing"]), frequent)
        cats, counts = d["categories"], d["counts"]
        if len(cats) != len(counts):
            raise ValueError(f"profile column {d['name']!r}: categories and counts differ")
        return cls(
            str(d["name"]),
            {str(k): int(v) for k, v in zip(cats, counts, strict=True)},
            int(d["n_missing"]),
        )


ColumnProfile: TypeAlias = NumericalProfile | CategoricalProfile


def as_categorical(column: Column) -> CategoricalColumn:
    """A column as categories; a float column's values become labels ("3", "0.5")."""
    if isinstance(column, CategoricalColumn):
        return column
    arr = np.asarray(column, dtype=np.float64)
    missing = np.isnan(arr)
    uniq, inverse = np.unique(arr[~missing], return_inverse=True)
    labels = tuple(
        str(int(v)) if math.isfinite(v) and v == int(v) and abs(v) < 2**53 else repr(float(v))
        for v in uniq.tolist()
    )
    codes = np.full(arr.shape, -1, dtype=np.int32)
    codes[~missing] = inverse.astype(np.int32)
    return CategoricalColumn(codes, labels)


def as_numerical(name: str, column: Column) -> FloatArray:
    """A column as float64; a categorical column here is a type mismatch (ValueError)."""
    if isinstance(column, CategoricalColumn):
        raise ValueError(
            f"feature {name!r} is declared numerical but its column holds categories "
            f"(e.g. {column.categories[:3]!r}); declare it categorical"
        )
    return np.asarray(column, dtype=np.float64)


def profile_column(
    feature: Feature,
    column: Column,
    *,
    exact_limit: int | None = DEFAULT_EXACT_LIMIT,
    sketch_k: int = DEFAULT_SKETCH_K,
    category_cap: int | None = None,
) -> ColumnProfile:
    """Profile one column as the given feature type (``category_cap``: categorical only)."""
    if feature.type == "numerical":
        return NumericalProfile.from_values(
            feature.name,
            as_numerical(feature.name, column),
            exact_limit=exact_limit,
            sketch_k=sketch_k,
        )
    return CategoricalProfile.from_column(feature.name, column, category_cap=category_cap)
