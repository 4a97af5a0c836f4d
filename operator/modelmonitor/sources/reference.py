"""Load a monitor's reference data once, and again only when it changes.

Sources: a ConfigMap key, an http(s) URL (size-limited, timed out, conditional GET), a
file on a mounted volume (job mode), inline rows, or a saved reference profile. The
result is a :class:`LoadedReference`: the profile every run compares against (computed
once) plus a bounded sample of raw rows for the probe to send.

Whether the reference changed is asked cheaply on every run: the ConfigMap's
``resourceVersion``, the URL's ETag/Last-Modified, the file's size and mtime, the spec's
own digest for inline rows. Only a change reloads and re-profiles.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from modelmonitor.adapters.files import DataError, detect_format, read_dataset
from modelmonitor.core.cluster import ObjectLookup, ReferenceLookupError
from modelmonitor.core.dataset import Dataset, Feature
from modelmonitor.core.spec import FeatureSpec, ReferenceSpec
from modelmonitor.core.stats.column_profile import as_categorical
from modelmonitor.core.stats.profile import ReferenceProfile

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_HTTP_TIMEOUT = 30.0
PROBE_POOL_ROWS = 10_000
_SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet", "npy": ".npy"}


class ReferenceLoadError(Exception):
    """The reference could not be loaded; ``reason`` is a status condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class LoadedReference:
    profile: ReferenceProfile
    rows: Dataset | None  # up to PROBE_POOL_ROWS raw rows; None for a saved profile
    version: str
    source: str

    @property
    def features(self) -> list[Feature]:
        return self.profile.features


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
) -> LoadedReference:
    """Turn raw file content into a :class:`LoadedReference` (format from ``fmt`` or name)."""
    if fmt == "auto":
        fmt = "profile" if name_hint.lower().endswith(".json") else _detect(name_hint)
    if fmt == "profile":
        try:
            profile = ReferenceProfile.from_dict(json.loads(payload))
        except (ValueError, KeyError, TypeError) as exc:
            raise ReferenceLoadError(
                "ReferenceUnreadable", f"{source}: not a reference profile: {exc}"
            ) from exc
        return LoadedReference(profile, None, version, source)
    with tempfile.TemporaryDirectory(prefix="modelmonitor-ref-") as tmp:
        path = Path(tmp) / f"reference{_SUFFIX[fmt]}"
        path.write_bytes(payload)
        return _read_file(path, fmt, plan, version=version, source=source)


def _detect(name: str) -> str:
    try:
        return detect_format(name)
    except DataError as exc:
        raise ReferenceLoadError(
            "ReferenceUnreadable",
            f"cannot tell the format of {name!r}; set spec.reference.format ({exc})",
        ) from exc


def _read_file(
    path: Path, fmt: str, plan: ColumnPlan | None, *, version: str, source: str
) -> LoadedReference:
    try:
        dataset = read_dataset(path, format=fmt, lenient=True)
        return build_reference(dataset, plan, version=version, source=source)
    except (DataError, ValueError) as exc:
        raise ReferenceLoadError("ReferenceUnreadable", f"{source}: {exc}") from exc


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


class ReferenceCache:
    """Per-monitor cache of loaded references, bounded in entries (LRU)."""

    def __init__(
        self,
        lookup: ObjectLookup,
        *,
        max_entries: int = 512,
        max_bytes: int = DEFAULT_MAX_BYTES,
        http_timeout: float = DEFAULT_HTTP_TIMEOUT,
    ) -> None:
        self._lookup = lookup
        self._entries: OrderedDict[tuple[str, str], LoadedReference] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._http_timeout = http_timeout
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def forget(self, namespace: str, monitor: str) -> None:
        """Entries are shared by every monitor with the same reference; they age out (LRU)."""

    async def load(
        self,
        namespace: str,
        monitor: str,
        reference: ReferenceSpec,
        plan: ColumnPlan | None = None,
    ) -> LoadedReference:
        plan = plan or ColumnPlan()
        # Keyed by what is loaded, not by who asks: monitors that share a reference share
        # one profile, and the cache never thrashes when monitors outnumber its entries.
        key = (namespace, _digest([reference.__dict__, plan.key()]))
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._entries.get(key)
            loaded = await self._load(namespace, reference, plan, cached)
            self._entries[key] = loaded
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                old, _ = self._entries.popitem(last=False)
                self._locks.pop(old, None)
            return loaded

    async def _load(
        self,
        namespace: str,
        ref: ReferenceSpec,
        plan: ColumnPlan,
        cached: LoadedReference | None,
    ) -> LoadedReference:
        spec_digest = _digest([ref.__dict__, plan.key()])
        if ref.source == "inline":
            version = f"inline:{spec_digest}"
            if cached is not None and cached.version == version:
                return cached
            return await asyncio.to_thread(
                inline_reference, list(ref.inline_rows), plan, version=version
            )
        if ref.source == "configMap":
            return await self._load_configmap(namespace, ref, plan, cached, spec_digest)
        if ref.source == "url":
            return await self._load_url(ref, plan, cached, spec_digest)
        return await self._load_file(ref, plan, cached, spec_digest)

    async def _load_configmap(
        self,
        namespace: str,
        ref: ReferenceSpec,
        plan: ColumnPlan,
        cached: LoadedReference | None,
        spec_digest: str,
    ) -> LoadedReference:
        name, key = ref.config_map_name or "", ref.config_map_key or ""
        source = f"ConfigMap {namespace}/{name} key {key}"
        try:
            cm = await asyncio.to_thread(self._lookup.get, "ConfigMap", namespace, name)
        except ReferenceLookupError as exc:
            raise ReferenceLoadError("ReferenceUnavailable", f"{source}: {exc}") from exc
        if cm is None:
            raise ReferenceLoadError("ReferenceNotFound", f"{source}: the ConfigMap does not exist")
        version = f"cm:{cm.get('metadata', {}).get('resourceVersion')}:{spec_digest}"
        if cached is not None and cached.version == version:
            return cached
        if key in (cm.get("data") or {}):
            payload = str(cm["data"][key]).encode()
        elif key in (cm.get("binaryData") or {}):
            payload = base64.b64decode(cm["binaryData"][key])
        else:
            raise ReferenceLoadError("ReferenceNotFound", f"{source}: no such key")
        return await asyncio.to_thread(
            parse_reference_bytes,
            payload,
            fmt=ref.format,
            name_hint=key,
            plan=plan,
            version=version,
            source=source,
        )

    async def _load_url(
        self,
        ref: ReferenceSpec,
        plan: ColumnPlan,
        cached: LoadedReference | None,
        spec_digest: str,
    ) -> LoadedReference:
        url = ref.url or ""
        headers: dict[str, str] = {}
        if cached is not None and cached.version.startswith("url:"):
            validator = cached.version.split(":", 2)[2].rsplit("|", 1)[0]
            if validator.startswith("etag="):
                headers["If-None-Match"] = validator[5:]
            elif validator.startswith("lm="):
                headers["If-Modified-Since"] = validator[3:]
        timeout = aiohttp.ClientTimeout(total=self._http_timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, headers=headers) as resp,
            ):
                if resp.status == 304 and cached is not None:
                    return cached
                if resp.status == 404:
                    raise ReferenceLoadError("ReferenceNotFound", f"{url}: HTTP 404")
                if resp.status >= 400:
                    raise ReferenceLoadError(
                        "ReferenceUnavailable", f"{url}: HTTP {resp.status} {resp.reason}"
                    )
                length = resp.content_length
                if length is not None and length > self._max_bytes:
                    raise ReferenceLoadError(
                        "ReferenceTooLarge",
                        f"{url}: {length} bytes is over the {self._max_bytes}-byte limit",
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(1 << 20):
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise ReferenceLoadError(
                            "ReferenceTooLarge", f"{url}: over the {self._max_bytes}-byte limit"
                        )
                    chunks.append(chunk)
                etag = resp.headers.get("ETag")
                modified = resp.headers.get("Last-Modified")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ReferenceLoadError(
                "ReferenceUnavailable", f"{url}: {type(exc).__name__}: {exc}"
            ) from exc
        validator = f"etag={etag}" if etag else f"lm={modified}" if modified else "none"
        payload = b"".join(chunks)
        version = f"url:{spec_digest}:{validator}|{hashlib.sha256(payload).hexdigest()[:16]}"
        if cached is not None and cached.version.rsplit("|", 1)[-1] == version.rsplit("|", 1)[-1]:
            return LoadedReference(cached.profile, cached.rows, version, cached.source)
        name_hint = url.split("?", 1)[0].rsplit("/", 1)[-1]
        return await asyncio.to_thread(
            parse_reference_bytes,
            payload,
            fmt=ref.format,
            name_hint=name_hint,
            plan=plan,
            version=version,
            source=url,
        )

    async def _load_file(
        self,
        ref: ReferenceSpec,
        plan: ColumnPlan,
        cached: LoadedReference | None,
        spec_digest: str,
    ) -> LoadedReference:
        path = Path(ref.path or "")
        try:
            st = path.stat()
        except OSError as exc:
            raise ReferenceLoadError("ReferenceNotFound", f"{path}: {exc.strerror}") from exc
        version = f"file:{spec_digest}:{st.st_size}:{st.st_mtime_ns}"
        if cached is not None and cached.version == version:
            return cached
        if st.st_size > self._max_bytes:
            raise ReferenceLoadError(
                "ReferenceTooLarge", f"{path}: {st.st_size} bytes is over the limit"
            )
        fmt = ref.format
        if fmt == "profile" or (fmt == "auto" and path.suffix.lower() == ".json"):
            payload = await asyncio.to_thread(path.read_bytes)
            return parse_reference_bytes(
                payload,
                fmt="profile",
                name_hint=path.name,
                plan=plan,
                version=version,
                source=str(path),
            )
        if fmt == "auto":
            fmt = _detect(path.name)
        return await asyncio.to_thread(
            _read_file, path, fmt, plan, version=version, source=str(path)
        )
