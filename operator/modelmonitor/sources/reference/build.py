"""From bytes, a file or rows to a :class:`LoadedReference`: the profile and a row sample.

The loaders (:mod:`.loaders`) fetch; this module reads the format, types the columns
the spec declares, profiles them once, and keeps a seeded sample of rows for the probe.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelmonitor.adapters.files import (
    DataError,
    ReadLimits,
    TooLargeError,
    detect_format,
    read_dataset,
)
from modelmonitor.core.dataset import Dataset, Feature
from modelmonitor.core.outbound import sanitize
from modelmonitor.core.spec import FeatureSpec
from modelmonitor.core.stats.column_profile import as_categorical
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.profile_check import ProfileError, parse_profile

PROBE_POOL_ROWS = 10_000
_SUFFIX = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "parquet": ".parquet", "npy": ".npy"}


class ReferenceLoadError(Exception):
    """The reference could not be loaded; ``reason`` is a status condition reason.

    ``version`` is the source's version when the content itself was refused (unreadable
    or too large): the cache remembers the refusal and does not decode the same content
    again; None when the source could not be reached (worth retrying).
    """

    def __init__(self, reason: str, message: str, *, version: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.version = version


#: The profile of a cached refusal: a loader that finds its source unchanged returns the
#: cached entry, and the cache, seeing this profile, raises the refusal again.
REFUSED_PROFILE = ReferenceProfile({}, 0)


@dataclass(frozen=True, eq=False)
class LoadedReference:
    profile: ReferenceProfile
    rows: Dataset | None  # up to PROBE_POOL_ROWS raw rows; None for a saved profile
    version: str
    source: str
    # What is computed from this reference once and reused while it is cached (the
    # performance calibration, keyed by its settings): it lives and goes with the entry.
    derived: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def features(self) -> list[Feature]:
        return self.profile.features

    @property
    def refused(self) -> bool:
        """True for the cache's record of content that was refused (see REFUSED_PROFILE)."""
        return self.profile is REFUSED_PROFILE


@dataclass(frozen=True)
class ColumnPlan:
    """Which reference columns to profile.

    ``features``: the declared features (None: every column, types inferred);
    ``extras``: columns to keep when present (the prediction and label columns), typed
    as given. A declared feature missing from the data is an error; an extra is not.
    """

    features: tuple[Feature, ...] | None = None
    extras: tuple[Feature, ...] = ()

    @classmethod
    def from_spec(
        cls, features: Sequence[FeatureSpec], extras: Sequence[Feature] = ()
    ) -> ColumnPlan:
        declared = tuple(Feature(f.name, f.type) for f in features) or None
        return cls(declared, tuple(extras))

    def key(self) -> Any:
        return [[f.__dict__ for f in self.features or ()], [f.__dict__ for f in self.extras]]


def build_reference(
    dataset: Dataset, plan: ColumnPlan | None = None, *, version: str, source: str
) -> LoadedReference:
    """Profile ``dataset`` per ``plan`` and keep a seeded sample of its rows for probing."""
    plan = plan or ColumnPlan()
    dataset = _typed(dataset, [*(plan.features or ()), *plan.extras])
    if plan.features is not None:
        missing = [f.name for f in plan.features if f.name not in dataset]
        if missing:
            raise ValueError(f"the reference has no column(s) {', '.join(map(repr, missing))}")
        features = list(plan.features)
    else:
        extra_names = {e.name for e in plan.extras}
        features = [f for f in dataset.inferred_features() if f.name not in extra_names]
    names = {f.name for f in features}
    features += [e for e in plan.extras if e.name in dataset and e.name not in names]
    profile = ReferenceProfile.from_dataset(dataset, features)
    rows = dataset.select([f.name for f in features])
    if rows.n_rows > PROBE_POOL_ROWS:
        rng = np.random.default_rng(0)
        rows = rows.take(np.sort(rng.choice(rows.n_rows, PROBE_POOL_ROWS, replace=False)))
    return LoadedReference(profile, rows, version, source)


def parse_reference_bytes(
    payload: bytes,
    *,
    fmt: str,
    name_hint: str,
    plan: ColumnPlan | None,
    version: str,
    source: str,
    limits: ReadLimits | None = None,
) -> LoadedReference:
    """Turn raw file content into a :class:`LoadedReference` (format from ``fmt`` or name).

    gzip or bz2 content (told by its first bytes) is inflated as a stream under
    ``limits``; every format is checked against ``limits`` before it is decoded.
    """
    if fmt == "auto":
        fmt = "profile" if name_hint.lower().endswith(".json") else format_from_name(name_hint)
    if fmt == "profile":
        try:
            profile = parse_profile(payload)
        except ProfileError as exc:
            raise ReferenceLoadError(
                "ReferenceUnreadable",
                f"{source}: not a reference profile: {sanitize(str(exc))}",
                version=version,
            ) from None
        return LoadedReference(profile, None, version, source)
    with tempfile.TemporaryDirectory(prefix="modelmonitor-ref-") as tmp:
        path = Path(tmp) / f"reference{_SUFFIX[fmt]}"
        path.write_bytes(payload)
        del payload
        return read_reference_file(path, fmt, plan, version=version, source=source, limits=limits)


def format_from_name(name: str) -> str:
    """The data format a file or key name says (``.csv``, ``.parquet``...)."""
    try:
        return detect_format(name)
    except DataError as exc:
        raise ReferenceLoadError(
            "ReferenceUnreadable",
            f"cannot tell the format of {name!r}; set spec.reference.format ({exc})",
        ) from exc


def read_reference_file(
    path: Path,
    fmt: str,
    plan: ColumnPlan | None,
    *,
    version: str,
    source: str,
    limits: ReadLimits | None = None,
) -> LoadedReference:
    """Read a data file in ``fmt`` (checked against ``limits`` first) and build the reference."""
    try:
        dataset = read_dataset(path, format=fmt, lenient=True, limits=limits)
        return build_reference(dataset, plan, version=version, source=source)
    except TooLargeError as exc:
        raise ReferenceLoadError(
            "ReferenceTooLarge",
            f"{source}: reference {exc.reason}; raise the operator's reference limits or "
            "save a profile with 'modelmonitor baseline' and reference it",
            version=version,
        ) from None
    except (DataError, ValueError) as exc:
        # The error may quote the data (a CSV line): short and printable in status.
        raise ReferenceLoadError(
            "ReferenceUnreadable", f"{source}: {sanitize(str(exc))}", version=version
        ) from exc


def inline_reference(
    rows: Sequence[Any], plan: ColumnPlan | None, *, version: str
) -> LoadedReference:
    names: list[str] = []
    for row in rows:
        for key in row:
            if key not in names:
                names.append(key)
    columns = {name: [row.get(name) for row in rows] for name in names}
    dataset = Dataset.from_mapping(columns)
    try:
        return build_reference(dataset, plan, version=version, source="spec.reference.inline")
    except ValueError as exc:
        raise ReferenceLoadError("ReferenceUnreadable", f"spec.reference.inline: {exc}") from exc


def _typed(dataset: Dataset, features: Sequence[Feature] | None) -> Dataset:
    """Re-type inline columns that the spec declares differently (e.g. int codes as categories)."""
    if not features:
        return dataset
    columns = dict(dataset.columns)
    for f in features:
        col = columns.get(f.name)
        if col is None:
            continue
        if f.type == "categorical":
            columns[f.name] = as_categorical(col)
    return Dataset(columns)
