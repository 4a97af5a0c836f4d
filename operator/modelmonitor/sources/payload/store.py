"""The payload-log store: every monitor's window, keyed by (namespace, monitor), with global caps.

The collector's HTTP side (:mod:`.server`) routes events here; a run takes a snapshot of
its monitor's window (:mod:`.window`). Thread-safe: the server adds from the event loop
(and worker threads for large bodies) while runs read.

Each window belongs to one monitor and is written only by a sender that shows the
monitor's token (:meth:`PayloadStore.authenticate`, compared in constant time), and
holds at most its share of the store's byte budget: ``max_bytes`` divided by the number
of windows, so one tenant flooding its window cannot take memory from the others.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from modelmonitor.core.codecs.cloudevents import PayloadEvent
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.sources.payload.limits import (
    DEFAULT_MAX_PENDING,
    DEFAULT_PENDING_SECONDS,
    PayloadCounters,
    WindowLimits,
)
from modelmonitor.sources.payload.window import PayloadWindow

DEFAULT_MAX_MONITORS = 1000


DEFAULT_MAX_TOTAL_SAMPLES = 5_000_000


DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # the payload store's share of the operator's memory
_NO_TOKEN = "-" * 43  # compared against when a monitor is unknown: the same work either way


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
    token: str


class PayloadStore:
    """The windows of all monitors with ``spec.data.payloadLog``, thread-safe.

    Caps: ``max_monitors`` windows, ``max_total_samples`` summed over their
    ``maxSamples``, and ``max_bytes`` of memory shared equally by the windows (each one
    gives up its oldest rows past ``max_bytes / len(store)``). ``rejected`` counts
    requests turned away before reaching a window, by reason (``token_missing``,
    ``token_wrong``, ``unknown_monitor``, ``foreign_source``, ``malformed``,
    ``too_large``, ``slow_body``; ``labels_off`` for labels sent to a monitor that takes
    none), the label route's as the payload route's.
    """

    def __init__(
        self,
        *,
        max_monitors: int = DEFAULT_MAX_MONITORS,
        max_total_samples: int = DEFAULT_MAX_TOTAL_SAMPLES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        pending_seconds: float = DEFAULT_PENDING_SECONDS,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.max_monitors = max_monitors
        self.max_total_samples = max_total_samples
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.max_bytes = max_bytes
        self.pending_seconds = pending_seconds
        self.max_pending = max_pending
        self.rejected: dict[str, int] = {}
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def register(
        self, namespace: str, monitor: str, spec: MonitorSpec, token: str
    ) -> PayloadWindow | None:
        """Create or update the monitor's window from its spec, written only by senders
        that show ``token``; a spec without ``data.payloadLog`` forgets it (and returns
        None). An update keeps the rows. Raise PayloadStoreFullError when a new window
        would pass a cap."""
        if not token:
            raise ValueError("a payload-log window needs a token")
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
                entry = self._entries[key] = _Entry(window, target, token)
                self._share_bytes()
            else:
                entry.target = target
                entry.token = token
                if entry.window.limits != limits or entry.window.allowed_names != (
                    frozenset(names) if names else None
                ):
                    entry.window.reconfigure(limits, names)
            entry.window.configure_labels(
                spec.performance.labels if spec.performance is not None else None
            )
            return entry.window

    def forget(self, namespace: str, monitor: str) -> bool:
        with self._lock:
            gone = self._entries.pop((namespace, monitor), None) is not None
            if gone:
                self._share_bytes()
            return gone

    def _share_bytes(self) -> None:
        """Give every window its equal share of ``max_bytes`` (under the store's lock)."""
        share = self.max_bytes // max(1, len(self._entries))
        for entry in self._entries.values():
            entry.window.set_byte_limit(share)

    def nbytes(self) -> int:
        """Memory held by all windows, as counted against the budget."""
        with self._lock:
            windows = [e.window for e in self._entries.values()]
        return sum(w.nbytes() for w in windows)

    def window_bytes(self) -> dict[tuple[str, str], int]:
        """Each window's memory, as counted against its share (for the metrics)."""
        with self._lock:
            entries = list(self._entries.items())
        return {k: e.window.nbytes() for k, e in entries}

    def label_counters(self) -> dict[tuple[str, str], dict[str, int]]:
        """The late-label counters of every window that takes labels (for the metrics)."""
        with self._lock:
            entries = list(self._entries.items())
        out = {}
        for key, entry in entries:
            counters = entry.window.label_counters()
            if counters is not None:
                out[key] = counters
        return out

    def authenticate(self, namespace: str, monitor: str, token: str) -> str | None:
        """None when ``token`` is the monitor's; else the reason to refuse
        (``unknown_monitor`` or ``token_wrong``). Tokens are compared in constant time,
        and an unknown monitor costs the same comparison, so timing tells nothing."""
        with self._lock:
            entry = self._entries.get((namespace, monitor))
        expected = entry.token if entry is not None else _NO_TOKEN
        same = hmac.compare_digest(token.encode(), expected.encode())
        if entry is None:
            return "unknown_monitor"
        return None if same else "token_wrong"

    def window(self, namespace: str, monitor: str) -> PayloadWindow | None:
        with self._lock:
            entry = self._entries.get((namespace, monitor))
            return entry.window if entry is not None else None

    def resolve(self, namespace: str, service: str) -> list[str]:
        """The monitors in ``namespace`` whose target is the InferenceService ``service``."""
        with self._lock:
            return sorted(
                mon
                for (ns, mon), e in self._entries.items()
                if ns == namespace and e.target == _Target("InferenceService", service)
            )

    def mismatch(self, namespace: str, monitor: str, event: PayloadEvent) -> str | None:
        """Why ``event``, sent to this monitor, cannot be its data (None when it can).

        Its ``ce-namespace``, when present, must be the monitor's namespace. For an
        InferenceService target both ``ce-namespace`` and ``ce-inferenceservicename``
        must be present (KServe's logger always sets them) and name the target; other
        targets have no KServe logger, so a sender without the extensions is taken on
        the strength of its token.
        """
        with self._lock:
            entry = self._entries.get((namespace, monitor))
        if entry is None:
            return None
        what = f"{event.kind} {event.id}"
        if event.namespace is not None and event.namespace != namespace:
            return (
                f"{what} comes from namespace {event.namespace}; monitor "
                f"{namespace}/{monitor} takes only events of namespace {namespace}"
            )
        if entry.target.kind != "InferenceService":
            return None
        if event.namespace is None or event.service is None:
            return (
                f"{what} lacks the ce-namespace or ce-inferenceservicename extension that "
                f"KServe's logger sets; monitor {namespace}/{monitor} takes only the logs "
                f"of InferenceService {namespace}/{entry.target.name}"
            )
        if event.service != entry.target.name:
            return (
                f"{what} comes from InferenceService {namespace}/{event.service}; monitor "
                f"{namespace}/{monitor} watches {namespace}/{entry.target.name}"
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
