"""The per-process cache of loaded references: each one profiled once per change.

The cache only keeps entries and serializes loads of the same entry; fetching is the
loaders' (:mod:`.loaders`), one per ``spec.reference`` source, found by
``ReferenceSpec.source`` in :data:`~.loaders.LOADERS` (an unknown source is an
:class:`~modelmonitor.sources.registry.UnknownSourceError`).

Content that was refused (unreadable, or decoding to more than the limits allow) is
remembered with its source version like a loaded reference: while the source does not
change, each run reports the same refusal without fetching-and-decoding it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from modelmonitor.adapters.files import ReadLimits
from modelmonitor.adapters.outbound import Outbound
from modelmonitor.core.cluster import ObjectLookup
from modelmonitor.core.limits import REFERENCE_LIMITS
from modelmonitor.core.spec import ReferenceSpec
from modelmonitor.sources.reference.build import (
    REFUSED_PROFILE,
    ColumnPlan,
    LoadedReference,
    ReferenceLoadError,
)
from modelmonitor.sources.reference.loaders import LOADERS, LoadRequest

DEFAULT_HTTP_TIMEOUT = 30.0


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ReferenceCache:
    """Per-monitor cache of loaded references, bounded in entries (LRU)."""

    def __init__(
        self,
        lookup: ObjectLookup,
        *,
        max_entries: int = 512,
        max_bytes: int | None = None,
        http_timeout: float = DEFAULT_HTTP_TIMEOUT,
        volume_root: str | None = None,
        outbound: Outbound | None = None,
        limits: ReadLimits = REFERENCE_LIMITS,
    ) -> None:
        """``max_bytes``: of a fetched or read reference (default: the fence's
        ``limits.reference``); ``outbound``: the fence URLs are fetched through."""
        self._outbound = outbound or Outbound()
        self._lookup = lookup
        # Where a pvc reference's claim is mounted: a job-mode run's pod only.
        self._volume_root = Path(volume_root) if volume_root else None
        self._entries: OrderedDict[tuple[str, str], LoadedReference] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes if max_bytes is not None else self._outbound.limits.reference
        self._http_timeout = http_timeout
        self._limits = limits
        self._refusals: dict[tuple[str, str], ReferenceLoadError] = {}
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
        loader = LOADERS[reference.source]
        # Keyed by what is loaded, not by who asks: monitors that share a reference share
        # one profile, and the cache never thrashes when monitors outnumber its entries.
        digest = _digest([reference.__dict__, plan.key()])
        key = (namespace, digest)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            request = LoadRequest(
                namespace=namespace,
                reference=reference,
                plan=plan,
                digest=digest,
                cached=self._entries.get(key),
                lookup=self._lookup,
                max_bytes=self._max_bytes,
                http_timeout=self._http_timeout,
                volume_root=self._volume_root,
                outbound=self._outbound,
                limits=self._limits,
            )
            try:
                loaded = await loader.load(request)
            except ReferenceLoadError as exc:
                if exc.version is None:
                    raise  # the source could not be reached: try again next run
                loaded = LoadedReference(REFUSED_PROFILE, None, exc.version, str(exc))
                self._refusals[key] = exc
            if loaded.refused:
                self._remember(key, loaded)
                refusal = self._refusals[key]
                raise ReferenceLoadError(refusal.reason, str(refusal), version=refusal.version)
            self._refusals.pop(key, None)
            self._remember(key, loaded)
            return loaded

    def _remember(self, key: tuple[str, str], loaded: LoadedReference) -> None:
        self._entries[key] = loaded
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            old, _ = self._entries.popitem(last=False)
            self._locks.pop(old, None)
            self._refusals.pop(old, None)
