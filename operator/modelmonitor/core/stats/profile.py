"""Reference profiles: the reference data set's statistics, computed once and saved.

A :class:`ReferenceProfile` holds one summary per feature:

* numerical (:class:`NumericalProfile`): counts of finite, missing (NaN), +inf and -inf
  values; min, max, mean and the sum of squared deviations (exact, merged with Chan's
  parallel update); and either

  - the **exact sorted sample** of finite values when there are at most ``exact_limit``
    of them (default :data:`DEFAULT_EXACT_LIMIT` = 1,000), or
  - a **KLL quantile sketch** (Apache DataSketches, ``k`` = :data:`DEFAULT_SKETCH_K` =
    200) otherwise. Its normalised rank error is about 1.33% (99% confidence, one rank
    query), so any CDF value or bin proportion read from it is off by at most ~0.013.

  Bin edges and bin proportions (for PSI, Jensen-Shannon, Hellinger, KL) and the
  quantile grid (for Wasserstein and energy distance) are derived from the exact sample
  or the sketch on first use and cached, so a drift run costs O(current window).

* categorical (:class:`CategoricalProfile`): exact category counts and the missing count.
  Counts are sufficient statistics, so categorical tests stay exact at any size.

Why these limits: a profile must fit in a ConfigMap (< 1 MiB for 100 features). A KLL
sketch with k=200 serialises to about 5 KB whatever the input size; an exact sample of
1,000 float64 values to at most 8 KB (compressed). 100 features stay below ~1 MiB either
way (asserted in the tests). 1,000 is also the largest reference for which ``auto``
picks a test with a p-value (see :mod:`modelmonitor.core.stats.drift`), so the defaults agree.

Mergeability: profiles of shards merge (:meth:`ReferenceProfile.merge`) into the profile
of their concatenation. Counts, min/max and moments merge exactly (moments up to float
rounding); exact samples merge exactly while the total stays within ``exact_limit``;
beyond that the sketches merge with the sketch's documented rank error. Large inputs
stream through :meth:`ReferenceProfile.from_chunks`, which keeps at most one chunk plus
one profile in memory.

The saved format is JSON (``format``/``version`` keys; arrays and sketches as base64).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelmonitor.core.dataset import Dataset, Feature
from modelmonitor.core.stats.column_profile import (
    DEFAULT_EXACT_LIMIT,
    DEFAULT_SKETCH_K,
    CategoricalProfile,
    ColumnProfile,
    NumericalProfile,
    profile_column,
)

PROFILE_FORMAT = "modelmonitor.profile"
PROFILE_VERSION = 1


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Per-feature summaries of a reference data set; see the module docstring."""

    columns: Mapping[str, ColumnProfile]
    n_rows: int
    exact_limit: int | None = DEFAULT_EXACT_LIMIT
    sketch_k: int = DEFAULT_SKETCH_K
    category_cap: int | None = None
    """Most labels a categorical column counts exactly before it becomes a frequent-items
    sketch; None (saved reference profiles): always exact."""

    @property
    def features(self) -> list[Feature]:
        return [Feature(name, col.type) for name, col in self.columns.items()]

    def __getitem__(self, name: str) -> ColumnProfile:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    @classmethod
    def from_dataset(
        cls,
        dataset: Dataset,
        features: Sequence[Feature] | None = None,
        *,
        exact_limit: int | None = DEFAULT_EXACT_LIMIT,
        sketch_k: int = DEFAULT_SKETCH_K,
        category_cap: int | None = None,
    ) -> ReferenceProfile:
        """Profile ``features`` (default: all columns, types as stored) of ``dataset``.

        ``exact_limit=None`` keeps every column's exact sorted sample (no sketch).
        """
        feats = list(features) if features is not None else dataset.inferred_features()
        missing = [f.name for f in feats if f.name not in dataset]
        if missing:
            raise ValueError(f"reference data has no column(s) {', '.join(map(repr, missing))}")
        cols = {
            f.name: profile_column(
                f, dataset[f.name], exact_limit=exact_limit, sketch_k=sketch_k,
                category_cap=category_cap,
            )
            for f in feats
        }  # fmt: skip
        return cls(cols, dataset.n_rows, exact_limit, sketch_k, category_cap)

    @classmethod
    def from_chunks(
        cls,
        chunks: Iterable[Dataset],
        features: Sequence[Feature] | None = None,
        *,
        exact_limit: int | None = DEFAULT_EXACT_LIMIT,
        sketch_k: int = DEFAULT_SKETCH_K,
        category_cap: int | None = None,
    ) -> ReferenceProfile:
        """Stream chunks into one profile; memory holds one chunk plus the running profile."""
        result: ReferenceProfile | None = None
        feats = list(features) if features is not None else None
        for chunk in chunks:
            if feats is None:
                feats = chunk.inferred_features()
            part = cls.from_dataset(
                chunk, feats, exact_limit=exact_limit, sketch_k=sketch_k,
                category_cap=category_cap,
            )  # fmt: skip
            result = part if result is None else result.merge(part)
        if result is None:
            empty = {f.name: _empty(f) for f in feats or []}
            return cls(empty, 0, exact_limit, sketch_k, category_cap)
        return result

    def merge(self, other: ReferenceProfile) -> ReferenceProfile:
        """The profile of the concatenation of both inputs (see the module docstring)."""
        mine = (self.exact_limit, self.sketch_k, self.category_cap)
        theirs = (other.exact_limit, other.sketch_k, other.category_cap)
        if mine != theirs:
            raise ValueError(
                "cannot merge profiles built with different settings: "
                f"exact_limit/sketch_k/category_cap {'/'.join(map(str, mine))} vs "
                f"{'/'.join(map(str, theirs))}"
            )
        if list(self.columns) != list(other.columns):
            raise ValueError(
                f"cannot merge profiles of different features: {list(self.columns)} vs "
                f"{list(other.columns)}"
            )
        cols: dict[str, ColumnProfile] = {}
        for name, a in self.columns.items():
            b = other.columns[name]
            if isinstance(a, NumericalProfile) and isinstance(b, NumericalProfile):
                cols[name] = a.merge(b, exact_limit=self.exact_limit, sketch_k=self.sketch_k)
            elif isinstance(a, CategoricalProfile) and isinstance(b, CategoricalProfile):
                cols[name] = a.merge(b, category_cap=self.category_cap)
            else:
                raise ValueError(f"feature {name!r} is {a.type} in one profile, {b.type} in other")
        return ReferenceProfile(
            cols, self.n_rows + other.n_rows, self.exact_limit, self.sketch_k, self.category_cap
        )

    # --- serialisation ------------------------------------------------------------
    def to_dict(self, *, sketched: bool = False) -> dict[str, Any]:
        """The JSON form. ``sketched``: also categorical columns that turned into
        frequent-items sketches (a window partition's profile sent to be merged)."""
        out: dict[str, Any] = {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "n_rows": self.n_rows,
            "exact_limit": self.exact_limit,
            "sketch_k": self.sketch_k,
            "columns": [
                c.to_dict(sketched=True)
                if isinstance(c, CategoricalProfile) and sketched
                else c.to_dict()
                for c in self.columns.values()
            ],
        }
        if self.category_cap is not None:  # a window's partition profile, sent to be merged
            out["category_cap"] = self.category_cap
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceProfile:
        if d.get("format") != PROFILE_FORMAT:
            raise ValueError(f"not a modelmonitor profile (format {d.get('format')!r})")
        if d.get("version") != PROFILE_VERSION:
            raise ValueError(
                f"unsupported profile version {d.get('version')!r} (this build reads "
                f"version {PROFILE_VERSION})"
            )
        cols: dict[str, ColumnProfile] = {}
        for c in d["columns"]:
            if c["type"] == "numerical":
                cols[c["name"]] = NumericalProfile.from_dict(c)
            elif c["type"] == "categorical":
                cols[c["name"]] = CategoricalProfile.from_dict(c)
            else:
                raise ValueError(f"profile column {c.get('name')!r}: unknown type {c['type']!r}")
        limit = d["exact_limit"]
        cap = d.get("category_cap")
        return cls(
            cols,
            int(d["n_rows"]),
            None if limit is None else int(limit),
            int(d["sketch_k"]),
            None if cap is None else int(cap),
        )

    def to_json(self, *, sketched: bool = False) -> str:
        return json.dumps(self.to_dict(sketched=sketched), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"profile is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("profile JSON must be an object")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        return cls.from_json(Path(path).read_bytes())


def _empty(feature: Feature) -> ColumnProfile:
    if feature.type == "numerical":
        return NumericalProfile.from_values(feature.name, np.empty(0))
    return CategoricalProfile(feature.name, {}, 0)
