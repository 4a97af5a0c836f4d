"""One monitor's payload-log window: request and response paired, rows in ring buffers.

:class:`PayloadWindow` takes the events that :mod:`modelmonitor.core.codecs.cloudevents`
decoded, pairs request and response by id (either may come first), keeps unpaired halves
for a bounded time and count, and holds the paired rows in column-wise numpy ring buffers
bounded by ``windowSeconds`` and ``maxSamples`` (oldest out first).
:meth:`PayloadWindow.snapshot` turns the window into a :class:`Dataset`. The windows of
all monitors live in :mod:`.store`; the HTTP side is :mod:`.server`.

Rows keep their input values by *column key*: a feature name (v1 instances that are
objects, v2 requests with one input per feature) or a position (v1 instances that are
lists, a v2 ``[rows, k]`` tensor). Positions meet names only in :meth:`snapshot`, where
the i-th feature of the monitor is position i - so the features may come from the
reference, known only at run time. Time is injected: every method that needs "now" takes
it (seconds since the epoch, our clock: rows are timed on arrival, not by ``ce-time``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

from modelmonitor.core.codecs.cloudevents import (
    ColumnKey,
    MalformedEventError,
    PayloadEvent,
    Values,
)
from modelmonitor.core.codecs.labels import LabelBatch, row_id
from modelmonitor.core.dataset import Column, Dataset, FloatArray
from modelmonitor.core.spec import LabelsSpec
from modelmonitor.sources.payload.columns import ColumnStore, materialize
from modelmonitor.sources.payload.labels import LabelBuffer, LabelCounters, LabelOutcome
from modelmonitor.sources.payload.limits import (
    MAX_PROBABILITY_COLUMNS,
    PayloadCounters,
    PayloadStatus,
    WindowLimits,
)

_INITIAL_CAPACITY = 256
_RECENT_BYTES = 100  # one remembered id, besides its text

AddOutcome: TypeAlias = Literal["pending", "paired", "duplicate"]


class FeatureLike(Protocol):
    """A feature's name and type: :class:`~modelmonitor.core.dataset.Feature` or a FeatureSpec."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...


@dataclass
class _Pending:
    received: float
    event: PayloadEvent
    nbytes: int  # as counted against the byte share


class PayloadWindow:
    """One monitor's rolling window of paired rows; thread-safe.

    ``allowed_names``: when the monitor lists its features, named input columns other
    than those are not stored (positions always are, up to ``max_columns``).
    """

    def __init__(self, limits: WindowLimits, *, allowed_names: Sequence[str] | None = None) -> None:
        self.limits = limits
        self.allowed_names = frozenset(allowed_names) if allowed_names else None
        self.counters = PayloadCounters()
        self._lock = threading.Lock()
        self.byte_limit: int | None = None  # the store's share for this window (None: no cap)
        self.source_problem: str | None = None  # set by a Kafka feed that cannot read
        self._reset()

    def _reset(self) -> None:
        """No rows, no unpaired halves, no remembered ids, the clock unset."""
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._pending_rows = 0
        self._pending_bytes = 0
        self._recent: OrderedDict[str, float] = OrderedDict()  # paired ids, for duplicates
        self._recent_bytes = 0
        self._capacity = 0
        self._head = 0
        self._size = 0
        self._times: FloatArray = np.zeros(0)
        self._endpoints: npt.NDArray[np.int8] = np.zeros(0, dtype=np.int8)
        self._endpoint_names: list[str] = []
        self._columns: dict[ColumnKey, ColumnStore] = {}
        self._prediction = ColumnStore(0)
        # The responses' class probabilities, one store per class; the width is the first
        # response's (at most MAX_PROBABILITY_COLUMNS); rows of another width keep NaNs.
        self._probabilities: list[ColumnStore] = []
        self._last_now = -math.inf
        self.removed_rows = 0  # rows that ever left the ring (for label compaction)
        # spec.performance.labels: served predictions waiting for late labels (None: off)
        self._labels: LabelBuffer | None = None
        # the ConfigMap label feed's (name, key, resourceVersion) last joined (by a run)
        self.label_feed_version: tuple[str, str, str] | None = None

    # -- public API ----------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every row and unpaired half (the counters stay): a Kafka feed that
        (re)starts rebuilds the window from its topic, so each event is in it once."""
        with self._lock:
            self._reset()

    def add(self, event: PayloadEvent, now: float) -> AddOutcome:
        """Take one event: ``pending`` (waits for its other half), ``paired`` (its rows
        are in the window) or ``duplicate`` (ignored). A pair whose halves disagree on
        the number of rows raises MalformedEventError (both halves are dropped)."""
        with self._lock:
            now = self._tick(now)
            self.counters.received += 1
            if event.id in self._recent:
                self.counters.duplicates += 1
                return "duplicate"
            other = self._pending.get(event.id)
            if other is None:
                self._hold(event, now)
                return "pending"
            if other.event.kind == event.kind:
                self.counters.duplicates += 1
                return "duplicate"
            del self._pending[event.id]
            self._pending_rows -= other.event.n_rows
            self._pending_bytes -= other.nbytes
            self._remember(event.id, now)
            request, response = (
                (event, other.event) if event.kind == "request" else (other.event, event)
            )
            if request.n_rows != response.n_rows:
                self.counters.malformed += 1
                raise MalformedEventError(
                    f"{event.id}: the response holds {response.n_rows} prediction(s) for "
                    f"{request.n_rows} request row(s)"
                )
            self._append(request, response, now)
            self.counters.paired += 1
            self._fit_bytes()
            return "paired"

    def configure_labels(self, spec: LabelsSpec | None) -> None:
        """Keep served predictions for late labels (``spec``), or stop (None). A change
        of labelDelay or maxPredictions keeps what waits."""
        with self._lock:
            if spec is None:
                self._labels = None
            elif self._labels is None:
                self._labels = LabelBuffer(spec.delay_seconds, spec.max_predictions)
            else:
                self._labels.reconfigure(spec.delay_seconds, spec.max_predictions)
            self._fit_bytes()

    @property
    def takes_labels(self) -> bool:
        return self._labels is not None

    def add_labels(self, batch: LabelBatch, now: float) -> LabelOutcome | None:
        """Join a batch of late labels to the served predictions (None: this window
        takes no labels)."""
        with self._lock:
            if self._labels is None:
                return None
            return self._labels.label(batch.ids, batch.labels, self._tick(now))

    def labelled(self, now: float) -> tuple[FloatArray, list[str | None]] | None:
        """The predictions waiting for labels (probabilities, labels or None), oldest
        first; None when this window takes no labels."""
        with self._lock:
            if self._labels is None:
                return None
            self._labels.expire(self._tick(now))
            return self._labels.snapshot()

    def label_counters(self) -> dict[str, int] | None:
        """``status.performance.labels``: the label counters and the predictions waiting."""
        with self._lock:
            if self._labels is None:
                return None
            out = LabelCounters(**vars(self._labels.counters)).as_status()
            out["awaiting"] = self._labels.awaiting()
            return out

    def record_malformed(self) -> None:
        """Count an event for this monitor that could not be read at all."""
        with self._lock:
            self.counters.received += 1
            self.counters.malformed += 1

    def snapshot(
        self,
        now: float,
        features: Sequence[FeatureLike],
        prediction_name: str = "prediction",
        prediction_type: str = "categorical",
        *,
        endpoint: str | None = None,
        min_samples: int | None = None,
        probabilities: list[FloatArray] | None = None,
    ) -> Dataset | None:
        """The window as a Dataset, oldest row first; None below ``min_samples`` rows
        (default: the spec's ``minSamples``; the window never holds fewer than 1 row).

        ``features`` are the model's inputs in the order it takes them: feature ``i``
        reads the column named like it, and where a row has none, position ``i``. Each
        gets a column (all missing when no row has it), numerical as float64 and
        categorical as a CategoricalColumn (numbers spelled as labels: 2.0 -> "2").
        ``prediction_name`` holds the predictions as ``prediction_type``. ``endpoint``
        keeps only rows that KServe logged for that endpoint (default or canary).
        ``probabilities``, when given, receives the same rows' class probabilities, one
        array per class (none when no response held probabilities; NaN for rows whose
        response did not).
        """
        with self._lock:
            self._expire(self._tick(now))
            slots = self._slots()
            if endpoint is not None:
                code = self._endpoint_code(endpoint, create=False)
                slots = slots[self._endpoints[slots] == code] if code >= 0 else slots[:0]
            needed = self.limits.min_samples if min_samples is None else min_samples
            if slots.size < max(needed, 1):
                return None
            columns: dict[str, Column] = {}
            for i, feature in enumerate(features):
                found = (self._columns.get(feature.name), self._columns.get(i))
                stores = [s for s in found if s is not None]
                columns[feature.name] = materialize(stores, slots, feature.type)
            columns[prediction_name] = materialize([self._prediction], slots, prediction_type)
            if probabilities is not None:
                probabilities.extend(store.numbers(slots) for store in self._probabilities)
            return Dataset(columns)

    def status(self, now: float) -> PayloadStatus:
        with self._lock:
            now = self._tick(now)
            self._expire(now)
            oldest = None
            if self._size:
                oldest = max(0.0, now - float(self._times[self._head]))
            return PayloadStatus(
                rows=self._size,
                pending=len(self._pending),
                min_samples=self.limits.min_samples,
                window_seconds=self.limits.window_seconds,
                max_samples=self.limits.max_samples,
                oldest_age_seconds=oldest,
                counters=PayloadCounters(**self.counters.as_dict()),
                source_problem=self.source_problem,
            )

    def reconfigure(self, limits: WindowLimits, allowed_names: Sequence[str] | None) -> None:
        """New bounds (a spec change); rows above the new maxSamples go, oldest first."""
        with self._lock:
            self.limits = limits
            self.allowed_names = frozenset(allowed_names) if allowed_names else None
            for key in [k for k in self._columns if isinstance(k, str)]:
                if not self._monitored(key):
                    del self._columns[key]
            if self._size > limits.max_samples:
                self._evict(self._size - limits.max_samples)
            if self._capacity > limits.max_samples:
                self._resize(limits.max_samples)

    def nbytes(self) -> int:
        """Memory held, as counted against the byte share: ring buffers, labels,
        unpaired halves and the ids remembered for duplicates."""
        with self._lock:
            return self._nbytes()

    def set_byte_limit(self, limit: int | None) -> None:
        """A new byte share (the store's budget divided among its windows); a window above
        it gives up its oldest unpaired halves, then its oldest rows, at once."""
        with self._lock:
            self.byte_limit = limit
            self._fit_bytes()

    def __len__(self) -> int:
        return self._size

    # -- internals (under the lock) -----------------------------------------------------
    def _tick(self, now: float) -> float:
        """A clock that never goes back, so the ring stays in time order."""
        self._last_now = max(self._last_now, float(now))
        return self._last_now

    def _hold(self, event: PayloadEvent, now: float) -> None:
        held = self._pending[event.id] = _Pending(now, event, _event_nbytes(event))
        self._pending_rows += event.n_rows
        self._pending_bytes += held.nbytes
        # The newest half always stays (a request larger than the window still pairs).
        while len(self._pending) > 1 and (
            len(self._pending) > self.limits.max_pending
            or self._pending_rows > self.limits.max_samples
        ):
            self._drop_oldest_pending()
        self._fit_bytes()

    def _drop_oldest_pending(self) -> None:
        _, gone = self._pending.popitem(last=False)
        self._pending_rows -= gone.event.n_rows
        self._pending_bytes -= gone.nbytes
        self.counters.dropped += 1

    def _remember(self, event_id: str, now: float) -> None:
        self._recent[event_id] = now
        self._recent_bytes += _RECENT_BYTES + len(event_id)
        while len(self._recent) > 4 * self.limits.max_pending:
            self._forget_oldest_id()

    def _forget_oldest_id(self) -> None:
        event_id, _ = self._recent.popitem(last=False)
        self._recent_bytes -= _RECENT_BYTES + len(event_id)

    def _nbytes(self) -> int:
        ring = self._times.nbytes + self._endpoints.nbytes + self._prediction.nbytes()
        ring += sum(store.nbytes() for store in self._columns.values())
        ring += sum(store.nbytes() for store in self._probabilities)
        labels = self._labels.nbytes() if self._labels is not None else 0
        return int(ring + self._pending_bytes + self._recent_bytes + labels)

    def _ring_nbytes(self) -> int:
        ring = self._times.nbytes + self._endpoints.nbytes + self._prediction.nbytes()
        ring += sum(store.nbytes() for store in self._columns.values())
        return int(ring + sum(store.nbytes() for store in self._probabilities))

    def _fit_bytes(self) -> None:
        """Stay within ``byte_limit``: give up the oldest unpaired halves, then forget
        half of the ids kept for duplicates and the ids of predictions that left, then
        the oldest quarter of whichever is larger, the predictions waiting for labels or
        the rows (shrinking the ring) - until the window fits (an empty one always does)."""
        limit = self.byte_limit
        labels = self._labels
        while limit is not None and self._nbytes() > limit:
            if self._pending:
                self._drop_oldest_pending()
                self.counters.over_budget += 1
            elif self._recent:
                for _ in range(max(1, len(self._recent) // 2)):
                    self._forget_oldest_id()
            elif labels is not None and labels.gone_nbytes():
                labels.forget_gone()
            elif (
                labels is not None
                and len(labels)
                and (not self._size or labels.nbytes() >= self._ring_nbytes())
            ):
                labels.shed(max(1, len(labels) // 4))
                labels.forget_gone()
            elif self._size:
                n = max(1, self._size // 4)
                self._evict(n, counted=False)
                self.counters.over_budget += n
                self._shrink(max(self._size, 1))
            else:
                self._shrink(0)
                return

    def _expire(self, now: float) -> None:
        horizon = now - self.limits.pending_seconds
        while self._pending and next(iter(self._pending.values())).received < horizon:
            self._drop_oldest_pending()
        while self._recent and next(iter(self._recent.values())) < horizon:
            self._forget_oldest_id()
        if self._labels is not None:
            self._labels.expire(now)
        if self._size:
            times = self._times[self._slots()]
            old = int(np.searchsorted(times, now - self.limits.window_seconds, side="left"))
            if old:
                self.counters.expired_rows += old
                self._evict(old, counted=False)
            if self._capacity > _INITIAL_CAPACITY and self._size < self._capacity // 4:
                self._resize(max(_INITIAL_CAPACITY, 2 * self._size))

    def _slots(self) -> npt.NDArray[np.intp]:
        return (self._head + np.arange(self._size, dtype=np.intp)) % max(self._capacity, 1)

    def live_slots(self) -> npt.NDArray[np.intp]:
        return self._slots()

    def compaction_due(self, store: ColumnStore) -> bool:
        """Compact a full vocabulary only when a quarter of the ring has turned over since
        its last compaction, so a column of ever-new labels costs amortised O(1)."""
        return self.removed_rows - store.compacted_at >= max(1, self._capacity // 4)

    def _evict(self, n: int, *, counted: bool = True) -> None:
        n = min(n, self._size)
        if n <= 0:
            return
        gone = (self._head + np.arange(n, dtype=np.intp)) % self._capacity
        for store in (*self._columns.values(), self._prediction, *self._probabilities):
            store.clear(gone)
        self._head = (self._head + n) % self._capacity
        self._size -= n
        self.removed_rows += n
        if counted:
            self.counters.evicted_rows += n

    def _resize(self, capacity: int) -> None:
        order = self._slots()
        times = np.zeros(capacity)
        endpoints = np.zeros(capacity, dtype=np.int8)
        times[: order.size] = self._times[order]
        endpoints[: order.size] = self._endpoints[order]
        self._times, self._endpoints = times, endpoints
        for store in (*self._columns.values(), self._prediction, *self._probabilities):
            store.resize(order, capacity)
        self._head, self._capacity = 0, capacity

    def _shrink(self, capacity: int) -> None:
        """A smaller ring, and only the labels its rows still use."""
        self._resize(capacity)
        live = self._slots()
        for store in (*self._columns.values(), self._prediction, *self._probabilities):
            store.compact(live)

    def _max_rows(self, incoming: Mapping[ColumnKey, object]) -> int:
        """``maxSamples``, or fewer when rows of this width would pass the byte share
        (8 bytes of time, 1 of endpoint, 12 per input column and the prediction)."""
        if self.byte_limit is None:
            return self.limits.max_samples
        keys = set(self._columns)
        keys.update(k for k in incoming if not isinstance(k, str) or self._monitored(k))
        width = min(len(keys), self.limits.max_columns) + 1 + len(self._probabilities)
        return max(1, min(self.limits.max_samples, self.byte_limit // (9 + 12 * width)))

    def _endpoint_code(self, name: str, *, create: bool = True) -> int:
        if name in self._endpoint_names:
            return self._endpoint_names.index(name) + 1
        if not create or len(self._endpoint_names) >= 16:
            return -1
        self._endpoint_names.append(name)
        return len(self._endpoint_names)

    def _append(self, request: PayloadEvent, response: PayloadEvent, now: float) -> None:
        assert request.rows is not None
        assert response.predictions is not None
        n = request.n_rows
        max_rows = self._max_rows(request.rows.columns)
        skip = max(0, n - max_rows)  # a batch larger than the whole window
        keep = n - skip
        if keep == 0:
            return
        self.counters.rows += n
        self.counters.evicted_rows += skip
        self._evict(self._size + keep - max_rows)
        if self._size + keep > self._capacity:
            grown = max(2 * self._capacity, self._size + keep, _INITIAL_CAPACITY)
            self._resize(min(max_rows, grown))
        slots = (self._head + self._size + np.arange(keep, dtype=np.intp)) % self._capacity
        self._size += keep
        self._times[slots] = now
        endpoint = request.endpoint or response.endpoint
        self._endpoints[slots] = self._endpoint_code(endpoint) if endpoint else 0
        written: set[ColumnKey] = set()
        for key, data in request.rows.columns.items():
            if isinstance(key, str) and not self._monitored(key):
                continue
            store = self._column(key)
            if store is None:
                self.counters.truncated += keep
                continue
            self.counters.truncated += store.put(slots, data[skip:], self)
            written.add(key)
        for key, store in self._columns.items():
            if key not in written:
                store.clear(slots)
        self.counters.truncated += self._prediction.put(slots, response.predictions[skip:], self)
        self._put_probabilities(slots, response.probabilities, skip)
        proba = response.probabilities
        if self._labels is not None and proba is not None and proba.ndim == 2:
            ids = [row_id(request.id, i, n) for i in range(skip, n)]
            self._labels.serve(ids, np.asarray(proba[skip:], dtype=np.float64), now)

    def _put_probabilities(
        self, slots: npt.NDArray[np.intp], proba: FloatArray | None, skip: int
    ) -> None:
        width = 0 if proba is None or proba.ndim != 2 else int(proba.shape[1])
        if not self._probabilities and 0 < width <= MAX_PROBABILITY_COLUMNS:
            self._probabilities = [ColumnStore(self._capacity) for _ in range(width)]
        if proba is None or width != len(self._probabilities):
            for store in self._probabilities:
                store.clear(slots)
            return
        for i, store in enumerate(self._probabilities):
            store.put(slots, np.ascontiguousarray(proba[skip:, i], dtype=np.float64), self)

    def _monitored(self, name: str) -> bool:
        return self.allowed_names is None or name in self.allowed_names

    def _column(self, key: ColumnKey) -> ColumnStore | None:
        store = self._columns.get(key)
        if store is not None:
            return store
        if len(self._columns) >= self.limits.max_columns:
            return None
        store = self._columns[key] = ColumnStore(self._capacity)
        return store


def _event_nbytes(event: PayloadEvent) -> int:
    """An unpaired half's memory: its arrays, its strings (64 bytes of object each
    plus the text) and its id."""
    arrays: list[Values] = []
    if event.rows is not None:
        arrays.extend(event.rows.columns.values())
    if event.predictions is not None:
        arrays.append(event.predictions)
    if event.probabilities is not None:
        arrays.append(event.probabilities)
    total = 300 + len(event.id)
    for a in arrays:
        total += a.nbytes
        if a.dtype == object:
            total += sum(64 + (len(v) if isinstance(v, str) else 0) for v in a.tolist())
    return total
