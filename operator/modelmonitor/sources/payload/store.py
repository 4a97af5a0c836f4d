"""The payload-log store: every monitor's window, keyed by (namespace, monitor), with global caps.

The collector's HTTP side (:mod:`.server`) routes events here; a run takes a snapshot of
its monitor's window (:mod:`.window`). Thread-safe: the server adds from the event loop
(and worker threads for large bodies) while runs read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from modelmonitor.core.codecs.cloudevents import PayloadEvent
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.sources.payload.window import (
    DEFAULT_MAX_PENDING,
    DEFAULT_PENDING_SECONDS,
    PayloadCounters,
    PayloadWindow,
    WindowLimits,
)

DEFAULT_MAX_MONITORS = 1000


DEFAULT_MAX_TOTAL_SAMPLES = 5_000_000


class PayloadStoreFullError(RuntimeError):
    """Registering one more monitor would pass a global cap."""


@dataclass(frozen=True)
class _Target:
    kind: str
    name: str


@dataclass
class _Entry:
    window: PayloadWindow
    target: _Target


class PayloadStore:
    """The windows of all monitors with ``spec.data.payloadLog``, thread-safe.

    Caps: ``max_monitors`` windows, and ``max_total_samples`` summed over their
    ``maxSamples`` (what a full store can hold: about 12 bytes per value and 9 per row).
    ``rejected`` counts requests turned away before reaching a window, by reason
    (``unknown_monitor``, ``malformed``, ``too_large``, ``unrouted``).
    """

    def __init__(
        self,
        *,
        max_monitors: int = DEFAULT_MAX_MONITORS,
        max_total_samples: int = DEFAULT_MAX_TOTAL_SAMPLES,
        pending_seconds: float = DEFAULT_PENDING_SECONDS,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.max_monitors = max_monitors
        self.max_total_samples = max_total_samples
        self.pending_seconds = pending_seconds
        self.max_pending = max_pending
        self.rejected: dict[str, int] = {}
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def register(self, namespace: str, monitor: str, spec: MonitorSpec) -> PayloadWindow | None:
        """Create or update the monitor's window from its spec; a spec without
        ``data.payloadLog`` forgets it (and returns None). An update keeps the rows.
        Raise PayloadStoreFullError when a new window would pass a cap."""
        if spec.payload_log is None:
            self.forget(namespace, monitor)
            return None
        limits = WindowLimits.from_spec(
            spec.payload_log, pending_seconds=self.pending_seconds, max_pending=self.max_pending
        )
        names = [f.name for f in spec.features] or None
        target = _Target(spec.target.kind, spec.target.name)
        key = (namespace, monitor)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None and len(self._entries) >= self.max_monitors:
                raise PayloadStoreFullError(
                    f"payload log of {namespace}/{monitor}: the operator already collects "
                    f"for {self.max_monitors} monitors"
                )
            others = sum(e.window.limits.max_samples for k, e in self._entries.items() if k != key)
            if others + limits.max_samples > self.max_total_samples:
                raise PayloadStoreFullError(
                    f"payload log of {namespace}/{monitor}: maxSamples {limits.max_samples} "
                    f"would take the operator past {self.max_total_samples} samples in all "
                    f"({others} held by other monitors)"
                )
            if entry is None:
                window = PayloadWindow(limits, allowed_names=names)
                entry = self._entries[key] = _Entry(window, target)
            else:
                entry.target = target
                if entry.window.limits != limits or entry.window.allowed_names != (
                    frozenset(names) if names else None
                ):
                    entry.window.reconfigure(limits, names)
            return entry.window

    def forget(self, namespace: str, monitor: str) -> bool:
        with self._lock:
            return self._entries.pop((namespace, monitor), None) is not None

    def window(self, namespace: str, monitor: str) -> PayloadWindow | None:
        with self._lock:
            entry = self._entries.get((namespace, monitor))
            return entry.window if entry is not None else None

    def resolve(self, namespace: str, service: str) -> list[str]:
        """The monitors in ``namespace`` whose target is the InferenceService ``service``
        (what the server routes a ``POST /`` to)."""
        with self._lock:
            return sorted(
                mon
                for (ns, mon), e in self._entries.items()
                if ns == namespace and e.target == _Target("InferenceService", service)
            )

    def mismatch(self, namespace: str, monitor: str, event: PayloadEvent) -> str | None:
        """Why ``event``, sent to this monitor, cannot be its data (None when it can):
        it names another namespace or InferenceService than the monitor's target."""
        with self._lock:
            entry = self._entries.get((namespace, monitor))
        if entry is None or entry.target.kind != "InferenceService":
            return None
        theirs = f"{event.namespace or namespace}/{event.service or entry.target.name}"
        ours = f"{namespace}/{entry.target.name}"
        if theirs != ours:
            return (
                f"{event.kind} {event.id} comes from InferenceService {theirs}; monitor "
                f"{namespace}/{monitor} watches {ours}"
            )
        return None

    def reject(self, reason: str) -> None:
        """Count a request turned away before it reached a window."""
        with self._lock:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def counters(self) -> dict[tuple[str, str], PayloadCounters]:
        """A copy of every window's counters (for the operator's metrics)."""
        with self._lock:
            entries = list(self._entries.items())
        return {k: PayloadCounters(**e.window.counters.as_dict()) for k, e in entries}

    def __iter__(self) -> Iterator[tuple[str, str]]:
        with self._lock:
            return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
