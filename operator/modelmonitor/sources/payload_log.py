"""Payload log: the CloudEvents of KServe's payload logger -> a rolling window per monitor.

KServe's payload logger (``spec.predictor.logger`` of an InferenceService) POSTs every
inference request and every successful response as a CloudEvent 1.0: type
``org.kubeflow.serving.inference.request`` / ``...inference.response``, the same ``id``
for both halves of one call, extensions ``inferenceservicename``, ``namespace``,
``component``, ``endpoint`` (``default`` or ``canary``) and ``metadata``, and the raw
inference payload as data. This module is the pure core of the collector (no I/O; the
HTTP server is :mod:`modelmonitor.sources.payload_server`):

* :func:`parse_events` / :func:`parse_event` read one HTTP request (headers + body) in
  binary mode (``ce-*`` headers, payload as body), structured mode
  (``application/cloudevents+json``) or batched mode
  (``application/cloudevents-batch+json``) into :class:`PayloadEvent` objects: a request's
  rows (KServe v1 ``instances`` or Open Inference Protocol v2 ``inputs``) or a response's
  predictions (v1 ``predictions`` or v2 ``outputs``, read by the probe's codecs). Anything
  else raises :class:`MalformedEventError` with a one-line reason.
* :class:`PayloadWindow` pairs request and response by id (either may come first),
  keeps unpaired halves for a bounded time and count, and holds the paired rows in
  column-wise numpy ring buffers bounded by ``windowSeconds`` and ``maxSamples`` (oldest
  out first). :meth:`PayloadWindow.snapshot` turns the window into a :class:`Dataset`.
* :class:`PayloadStore` holds the windows of all monitors, keyed by (namespace, monitor),
  with global caps.

Rows keep their input values by *column key*: a feature name (v1 instances that are
objects, v2 requests with one input per feature) or a position (v1 instances that are
lists, a v2 ``[rows, k]`` tensor). Positions meet names only in :meth:`snapshot`, where
the i-th feature of the monitor is position i - so the features may come from the
reference, known only at run time. Time is injected: every method that needs "now" takes
it (seconds since the epoch, our clock: rows are timed on arrival, not by ``ce-time``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

from modelmonitor.dataset import CategoricalColumn, CodeArray, Column, Dataset, FloatArray
from modelmonitor.sources.probe import (
    BadResponseError,
    V2Options,
    label_text,
    parse_predictions,
    prediction_values,
    v2_tensor,
)
from modelmonitor.spec import MonitorSpec, PayloadLogSpec

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
EVENT_KINDS: Mapping[str, Literal["request", "response"]] = {
    REQUEST_TYPE: "request",
    RESPONSE_TYPE: "response",
}
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
SPEC_VERSION = "1.0"

# Defaults of the bounds that the spec does not set (see WindowLimits).
DEFAULT_PENDING_SECONDS = 300.0
DEFAULT_MAX_PENDING = 1000
DEFAULT_MAX_COLUMNS = 256
DEFAULT_MAX_CATEGORIES = 10000
DEFAULT_MAX_LABEL_CHARS = 256
DEFAULT_MAX_MONITORS = 1000
DEFAULT_MAX_TOTAL_SAMPLES = 5_000_000
MAX_BATCH_EVENTS = 1000
_INITIAL_CAPACITY = 256

EventKind: TypeAlias = Literal["request", "response"]
ColumnKey: TypeAlias = str | int  # a feature name, or a position in the model's inputs
Values: TypeAlias = npt.NDArray[Any]  # float64, or object (str / float / None)
AddOutcome: TypeAlias = Literal["pending", "paired", "duplicate"]


class MalformedEventError(ValueError):
    """An event (or a pair of them) that cannot be read; the message is one line."""


# --- events ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Rows:
    """A logged request's input rows, column-wise: ``columns[key]`` has ``n_rows`` values.

    Values are float64 arrays, or object arrays of str, float and None (missing).
    """

    n_rows: int
    columns: Mapping[ColumnKey, Values]


@dataclass(frozen=True, eq=False)
class PayloadEvent:
    """One logged request or response of an inference call."""

    id: str
    kind: EventKind
    protocol: Literal["v1", "v2"]
    time: dt.datetime | None = None  # ce-time, as the sender stamped it
    namespace: str | None = None  # ce-namespace
    service: str | None = None  # ce-inferenceservicename
    endpoint: str | None = None  # ce-endpoint: default | canary
    component: str | None = None  # ce-component: predictor | transformer | ...
    source: str | None = None  # ce-source
    rows: Rows | None = None  # a request's inputs
    predictions: Values | None = None  # a response's predictions, one per row

    @property
    def n_rows(self) -> int:
        if self.rows is not None:
            return self.rows.n_rows
        return 0 if self.predictions is None else int(self.predictions.shape[0])


def parse_event(
    headers: Mapping[str, str], body: bytes, *, v2: V2Options | None = None
) -> PayloadEvent:
    """Exactly one event (binary or structured mode); MalformedEventError otherwise."""
    events = parse_events(headers, body, v2=v2)
    if len(events) != 1:
        raise MalformedEventError(f"expected one event, got a batch of {len(events)}")
    return events[0]


def parse_events(
    headers: Mapping[str, str], body: bytes, *, v2: V2Options | None = None
) -> list[PayloadEvent]:
    """The events of one HTTP request: one in binary or structured mode, any number in
    batched mode. ``v2`` names the output holding predictions (default: the first one).
    Raise MalformedEventError naming the first problem."""
    lower = {k.lower(): v for k, v in headers.items()}
    media = lower.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == STRUCTURED_CONTENT_TYPE:
        return [_structured(_json(body, "structured event"), v2)]
    if media == BATCH_CONTENT_TYPE:
        items = _json(body, "event batch")
        if not isinstance(items, list):
            raise MalformedEventError("a batched-mode body must be a JSON array of events")
        if len(items) > MAX_BATCH_EVENTS:
            raise MalformedEventError(
                f"a batch holds {len(items)} events; at most {MAX_BATCH_EVENTS}"
            )
        return [_structured(item, v2, f"batch[{i}]: ") for i, item in enumerate(items)]
    if "ce-specversion" not in lower:
        raise MalformedEventError(
            "not a CloudEvent: no ce-specversion header, and Content-Type is not "
            f"{STRUCTURED_CONTENT_TYPE}"
        )
    attrs = {
        key[3:]: urllib.parse.unquote(value)
        for key, value in lower.items()
        if key.startswith("ce-")
    }
    data = _json(body, "event data") if body.strip() else None
    return [_event(attrs, data, v2, "")]


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        snippet = body[:60].decode("utf-8", "replace")
        raise MalformedEventError(f"{what} is not JSON: {snippet!r}") from exc


def _structured(item: Any, v2: V2Options | None, where: str = "") -> PayloadEvent:
    if not isinstance(item, Mapping):
        raise MalformedEventError(f"{where}a structured event must be a JSON object")
    attrs = {str(k).lower(): v for k, v in item.items() if k not in ("data", "data_base64")}
    if "data_base64" in item:
        try:
            raw = base64.b64decode(str(item["data_base64"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedEventError(f"{where}data_base64 is not base64") from exc
        data = _json(raw, f"{where}event data")
    elif isinstance(item.get("data"), str):
        data = _json(item["data"].encode(), f"{where}event data")  # JSON sent as a string
    else:
        data = item.get("data")
    return _event({k: v for k, v in attrs.items() if isinstance(v, str)}, data, v2, where)


def _event(attrs: Mapping[str, str], data: Any, v2: V2Options | None, where: str) -> PayloadEvent:
    version = attrs.get("specversion")
    if version != SPEC_VERSION:
        raise MalformedEventError(f"{where}specversion {version!r} is not supported; expected 1.0")
    event_id = attrs.get("id", "")
    if not event_id:
        raise MalformedEventError(f"{where}the event has no id")
    etype = attrs.get("type", "")
    kind = EVENT_KINDS.get(etype)
    if kind is None:
        raise MalformedEventError(
            f"{where}event type {etype!r} is not {REQUEST_TYPE} or {RESPONSE_TYPE}"
        )
    if data is None:
        raise MalformedEventError(f"{where}{kind} {event_id}: the event has no data")
    time = _time(attrs.get("time"), where)
    try:
        if kind == "request":
            protocol, rows = decode_request(data)
            predictions = None
        else:
            protocol, predictions = decode_response(data, v2)
            rows = None
    except MalformedEventError as exc:
        raise MalformedEventError(f"{where}{kind} {event_id}: {exc}") from None
    return PayloadEvent(
        id=event_id,
        kind=kind,
        protocol=protocol,
        time=time,
        namespace=attrs.get("namespace") or None,
        service=attrs.get("inferenceservicename") or None,
        endpoint=attrs.get("endpoint") or None,
        component=attrs.get("component") or None,
        source=attrs.get("source") or None,
        rows=rows,
        predictions=predictions,
    )


def _time(text: str | None, where: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEventError(f"{where}time {text!r} is not an RFC 3339 timestamp") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# --- payloads --------------------------------------------------------------------------


def _keys(payload: Mapping[str, Any]) -> str:
    return ", ".join(sorted(map(str, payload))) or "none"


def decode_request(payload: Any) -> tuple[Literal["v1", "v2"], Rows]:
    """A logged request body as rows: KServe v1 ``instances`` or v2 ``inputs``."""
    if not isinstance(payload, Mapping):
        raise MalformedEventError(
            f"the body is a JSON {type(payload).__name__}, expected an object"
        )
    if "instances" in payload:
        return "v1", _v1_rows(payload["instances"])
    if "inputs" in payload:
        return "v2", _v2_rows(payload["inputs"])
    raise MalformedEventError(
        "the body has neither 'instances' (KServe v1) nor 'inputs' (Open Inference "
        f"Protocol v2); fields: {_keys(payload)}"
    )


def decode_response(
    payload: Any, v2: V2Options | None = None
) -> tuple[Literal["v1", "v2"], Values]:
    """A logged response body as one prediction per row: v1 ``predictions`` or v2
    ``outputs`` (class probabilities become the most probable class's index)."""
    if not isinstance(payload, Mapping):
        raise MalformedEventError(
            f"the body is a JSON {type(payload).__name__}, expected an object"
        )
    protocol: Literal["v1", "v2"]
    if "predictions" in payload:
        protocol, items = "v1", payload["predictions"]
        n_rows = len(items) if isinstance(items, list) else 0
    elif "outputs" in payload:
        protocol, n_rows = "v2", _v2_rows_declared(payload["outputs"], (v2 or V2Options()))
    else:
        raise MalformedEventError(
            "the body has neither 'predictions' (KServe v1) nor 'outputs' (Open Inference "
            f"Protocol v2); fields: {_keys(payload)}"
        )
    try:
        out = parse_predictions(protocol, payload, n_rows, v2=v2)
        values = out.values if out.values is not None else prediction_values(out, "categorical")
    except BadResponseError as exc:
        raise MalformedEventError(str(exc)) from None
    return protocol, _to_array(list(values))


def _v2_rows_declared(outputs: Any, v2: V2Options) -> int:
    """The row count that the predictions' output declares (checked by the codec)."""
    if not isinstance(outputs, list):
        return 0
    tensors = [out for out in outputs if isinstance(out, Mapping)]
    named = [out for out in tensors if out.get("name") == v2.output_name]
    for out in named or tensors[:1]:
        shape = out.get("shape")
        if isinstance(shape, list) and shape and isinstance(shape[0], int):
            return shape[0]
    return 0


def _v1_rows(instances: Any) -> Rows:
    if not isinstance(instances, list):
        raise MalformedEventError(f"'instances' is a {type(instances).__name__}, expected a list")
    n = len(instances)
    if n == 0:
        return Rows(0, {})
    if all(isinstance(item, Mapping) for item in instances):
        names: dict[str, None] = {}
        for item in instances:
            names.update(dict.fromkeys(map(str, item)))
        return Rows(n, {name: _to_array([it.get(name) for it in instances]) for name in names})
    if all(isinstance(item, list) for item in instances):
        widths = {len(item) for item in instances}
        if len(widths) != 1:
            raise MalformedEventError(
                f"'instances' are lists of different lengths {sorted(widths)}"
            )
        width = widths.pop()
        return Rows(n, {j: _to_array([item[j] for item in instances]) for j in range(width)})
    if any(isinstance(item, Mapping | list) for item in instances):
        raise MalformedEventError("'instances' mix objects, lists and values")
    return Rows(n, {0: _to_array(instances)})


def _v2_rows(inputs: Any) -> Rows:
    if not isinstance(inputs, list) or not inputs:
        raise MalformedEventError("'inputs' is empty or not a list")
    first = inputs[0].get("shape") if isinstance(inputs[0], Mapping) else None
    n = first[0] if isinstance(first, list) and first and isinstance(first[0], int) else -1
    tensors = []
    for raw in inputs:
        shape = raw.get("shape") if isinstance(raw, Mapping) else None
        if isinstance(shape, list) and shape and shape[0] != n:
            raise MalformedEventError("the inputs disagree on the number of rows")
        try:
            tensors.append(v2_tensor(raw, n, "input"))
        except BadResponseError as exc:
            raise MalformedEventError(str(exc)) from None
    if len(tensors) == 1 and len(tensors[0][1]) == 2 and tensors[0][1][1] != 1:
        _, shape, _, data = tensors[0]
        k = shape[1]
        return Rows(n, {j: _to_array(data[j::k]) for j in range(k)})
    wide = [name for name, shape, _, _ in tensors if len(shape) == 2 and shape[1] != 1]
    if wide:
        raise MalformedEventError(
            f"input(s) {', '.join(wide)} of shape [rows, k>1] next to other inputs; "
            "expected one [rows, features] tensor or one [rows] input per feature"
        )
    columns: dict[ColumnKey, Values] = {}
    for name, _, _, data in tensors:
        columns.setdefault(name, _to_array(data))
    return Rows(n, columns)


def _to_array(values: list[Any]) -> Values:
    """Numbers as float64; with any text, an object array of str, float and None.

    Text stays text (a zip code "01234" is not the number 1234), booleans become the
    labels "true"/"false" (as the probe spells them), nested values become missing.
    """
    try:
        guess = np.asarray(values)  # numpy's C loop decides: numbers only -> int or float
    except (TypeError, ValueError):  # ragged nesting
        guess = None
    if guess is not None and guess.ndim == 1 and guess.dtype.kind in "iuf":
        return guess.astype(np.float64, copy=False)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if isinstance(v, str):
            out[i] = v
        elif isinstance(v, bool):
            out[i] = "true" if v else "false"
        elif isinstance(v, int | float):
            out[i] = float(v)
        else:
            out[i] = None
    return out


# --- the window ------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowLimits:
    """The bounds of one monitor's window: time, rows, unpaired halves, columns, labels."""

    window_seconds: float = 3600.0
    max_samples: int = 50000
    min_samples: int = 500
    pending_seconds: float = DEFAULT_PENDING_SECONDS  # an unpaired half is kept this long
    max_pending: int = DEFAULT_MAX_PENDING  # and at most this many of them (rows: max_samples)
    max_columns: int = DEFAULT_MAX_COLUMNS  # input columns stored per window
    max_categories: int = DEFAULT_MAX_CATEGORIES  # distinct labels stored per column
    max_label_chars: int = DEFAULT_MAX_LABEL_CHARS  # longer labels are cut to this

    def __post_init__(self) -> None:
        if not (self.window_seconds > 0 and self.pending_seconds > 0):
            raise ValueError("window_seconds and pending_seconds must be > 0")
        if min(self.max_samples, self.max_pending, self.max_columns, self.max_categories) < 1:
            raise ValueError("max_samples, max_pending, max_columns, max_categories must be >= 1")
        if self.min_samples < 0 or self.max_label_chars < 1:
            raise ValueError("min_samples must be >= 0 and max_label_chars >= 1")

    @classmethod
    def from_spec(cls, spec: PayloadLogSpec, **overrides: Any) -> WindowLimits:
        return cls(
            window_seconds=float(spec.window_seconds),
            max_samples=spec.max_samples,
            min_samples=spec.min_samples,
            **overrides,
        )


@dataclass
class PayloadCounters:
    """What happened to the events of one monitor since it was registered."""

    received: int = 0  # events offered to the window (requests and responses)
    paired: int = 0  # request/response pairs completed
    rows: int = 0  # rows added to the window by those pairs
    dropped: int = 0  # unpaired halves given up (older than pendingSeconds, or evicted)
    duplicates: int = 0  # a second event with an id and kind already seen (ignored)
    malformed: int = 0  # unreadable events, and pairs whose halves disagree
    expired_rows: int = 0  # rows that aged out of windowSeconds
    evicted_rows: int = 0  # rows pushed out by maxSamples
    truncated: int = 0  # values not stored because a column or category cap was reached

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class PayloadStatus:
    """The state of a window at one moment."""

    rows: int  # rows in the window now
    pending: int  # unpaired halves waiting for their other half
    min_samples: int
    window_seconds: float
    max_samples: int
    oldest_age_seconds: float | None  # age of the oldest row; None when empty
    counters: PayloadCounters

    @property
    def ready(self) -> bool:
        return self.rows >= max(self.min_samples, 1)

    @property
    def message(self) -> str:
        text = (
            f"{self.rows} payload-log sample(s) in the last {self.window_seconds:g} s"
            f" (minSamples {self.min_samples})"
        )
        if self.counters.received == 0:
            text += "; no event received yet (is the InferenceService's logger pointed here?)"
        elif self.counters.paired == 0:
            text += f"; {self.counters.received} event(s), none paired (logger mode must be all)"
        return text


class FeatureLike(Protocol):
    """A feature's name and type: :class:`~modelmonitor.dataset.Feature` or a FeatureSpec."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...


class _Store:
    """One column's storage in the ring: a number or a label code per slot."""

    def __init__(self, capacity: int) -> None:
        self.values: FloatArray = np.full(capacity, np.nan)
        self.codes: CodeArray = np.full(capacity, -1, dtype=np.int32)
        self.vocab: list[str] = []
        self.index: dict[str, int] = {}
        self.compacted_at = 0  # the window's removed-rows count at the last compaction
        self.remap: CodeArray | None = None  # old code -> new code, set by compact()
        self._floats: FloatArray | None = None  # the labels as numbers, cached

    def resize(self, order: npt.NDArray[np.intp], capacity: int) -> None:
        values = np.full(capacity, np.nan)
        codes = np.full(capacity, -1, dtype=np.int32)
        values[: order.size] = self.values[order]
        codes[: order.size] = self.codes[order]
        self.values, self.codes = values, codes

    def clear(self, slots: npt.NDArray[np.intp]) -> None:
        self.values[slots] = np.nan
        self.codes[slots] = -1

    def put(self, slots: npt.NDArray[np.intp], data: Values, window: PayloadWindow) -> int:
        """Store ``data`` at ``slots``; return how many labels a cap turned into missing."""
        if data.dtype != object:
            self.values[slots] = data
            self.codes[slots] = -1
            return 0
        lost = 0
        values = np.full(slots.size, np.nan)
        codes = np.full(slots.size, -1, dtype=np.int32)
        limit = window.limits.max_label_chars
        for i, v in enumerate(data.tolist()):
            if isinstance(v, str):
                self.remap = None
                code = self.code(v[:limit], window)
                if self.remap is not None:  # compacted: renumber the codes of this batch
                    codes[:i] = self.remap[codes[:i]]
                if code < 0:
                    lost += 1
                codes[i] = code
            elif v is not None:
                values[i] = v
        self.values[slots] = values
        self.codes[slots] = codes
        return lost

    def code(self, label: str, window: PayloadWindow) -> int:
        code = self.index.get(label)
        if code is not None:
            return code
        if len(self.vocab) >= window.limits.max_categories:
            if not window.compaction_due(self):
                return -1
            self.compact(window.live_slots())
            self.compacted_at = window.removed_rows
            if len(self.vocab) >= window.limits.max_categories:
                return -1
        code = self.index[label] = len(self.vocab)
        self.vocab.append(label)
        self._floats = None
        return code

    def compact(self, live: npt.NDArray[np.intp]) -> None:
        """Forget the labels no row in the window uses any more."""
        codes = self.codes[live]
        used = np.unique(codes[codes >= 0])
        remap = np.full(len(self.vocab) + 1, -1, dtype=np.int32)
        remap[used] = np.arange(used.size, dtype=np.int32)
        self.codes[live] = remap[codes]  # -1 -> remap[-1] == -1
        self.vocab = [self.vocab[i] for i in used.tolist()]
        self.index = {label: i for i, label in enumerate(self.vocab)}
        self.remap = remap
        self._floats = None

    def numbers(self, slots: npt.NDArray[np.intp]) -> FloatArray:
        values = self.values[slots]
        codes = self.codes[slots]
        has = codes >= 0
        if has.any():
            if self._floats is None:
                self._floats = np.asarray([_label_float(s) for s in self.vocab], dtype=np.float64)
            values[has] = self._floats[codes[has]]
        return values

    def labels(self, slots: npt.NDArray[np.intp], table: dict[str, int]) -> CodeArray:
        """Codes into ``table`` (extended with new labels): numbers spelled as label text."""
        values = self.values[slots]
        codes = self.codes[slots]
        out = np.full(slots.size, -1, dtype=np.int32)
        has = codes >= 0
        if has.any():
            used, inverse = np.unique(codes[has], return_inverse=True)
            mapped = [_intern(table, self.vocab[u]) for u in used.tolist()]
            out[has] = np.asarray(mapped, dtype=np.int32)[inverse]
        num = ~has & np.isfinite(values)
        if num.any():
            uniq, inverse = np.unique(values[num], return_inverse=True)
            mapped = [_intern(table, label_text(float(x)) or "") for x in uniq.tolist()]
            out[num] = np.asarray(mapped, dtype=np.int32)[inverse]
        return out

    def nbytes(self) -> int:
        return int(self.values.nbytes + self.codes.nbytes) + sum(len(s) + 100 for s in self.vocab)


def _intern(table: dict[str, int], label: str) -> int:
    code = table.get(label)
    if code is None:
        code = table[label] = len(table)
    return code


def _label_float(label: str) -> float:
    if label == "true":
        return 1.0
    if label == "false":
        return 0.0
    try:
        return float(label)
    except ValueError:
        return math.nan


@dataclass
class _Pending:
    received: float
    event: PayloadEvent


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
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._pending_rows = 0
        self._recent: OrderedDict[str, float] = OrderedDict()  # paired ids, for duplicates
        self._capacity = 0
        self._head = 0
        self._size = 0
        self._times: FloatArray = np.zeros(0)
        self._endpoints: npt.NDArray[np.int8] = np.zeros(0, dtype=np.int8)
        self._endpoint_names: list[str] = []
        self._columns: dict[ColumnKey, _Store] = {}
        self._prediction = _Store(0)
        self._last_now = -math.inf
        self.removed_rows = 0  # rows that ever left the ring (for label compaction)

    # -- public API ----------------------------------------------------------------------
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
            return "paired"

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
    ) -> Dataset | None:
        """The window as a Dataset, oldest row first; None below ``min_samples`` rows
        (default: the spec's ``minSamples``; the window never holds fewer than 1 row).

        ``features`` are the model's inputs in the order it takes them: feature ``i``
        reads the column named like it, and where a row has none, position ``i``. Each
        gets a column (all missing when no row has it), numerical as float64 and
        categorical as a CategoricalColumn (numbers spelled as labels: 2.0 -> "2").
        ``prediction_name`` holds the predictions as ``prediction_type``. ``endpoint``
        keeps only rows that KServe logged for that endpoint (default or canary).
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
                columns[feature.name] = _materialize(stores, slots, feature.type)
            columns[prediction_name] = _materialize([self._prediction], slots, prediction_type)
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
        """Approximate memory held: ring buffers, labels and unpaired halves."""
        with self._lock:
            ring = self._times.nbytes + self._endpoints.nbytes + self._prediction.nbytes()
            ring += sum(store.nbytes() for store in self._columns.values())
            pending = sum(_event_nbytes(p.event) for p in self._pending.values())
            return int(ring + pending + 100 * len(self._recent))

    def __len__(self) -> int:
        return self._size

    # -- internals (under the lock) -----------------------------------------------------
    def _tick(self, now: float) -> float:
        """A clock that never goes back, so the ring stays in time order."""
        self._last_now = max(self._last_now, float(now))
        return self._last_now

    def _hold(self, event: PayloadEvent, now: float) -> None:
        self._pending[event.id] = _Pending(now, event)
        self._pending_rows += event.n_rows
        # The newest half always stays (a request larger than the window still pairs).
        while len(self._pending) > 1 and (
            len(self._pending) > self.limits.max_pending
            or self._pending_rows > self.limits.max_samples
        ):
            self._drop_oldest_pending()

    def _drop_oldest_pending(self) -> None:
        _, gone = self._pending.popitem(last=False)
        self._pending_rows -= gone.event.n_rows
        self.counters.dropped += 1

    def _remember(self, event_id: str, now: float) -> None:
        self._recent[event_id] = now
        while len(self._recent) > 4 * self.limits.max_pending:
            self._recent.popitem(last=False)

    def _expire(self, now: float) -> None:
        horizon = now - self.limits.pending_seconds
        while self._pending and next(iter(self._pending.values())).received < horizon:
            self._drop_oldest_pending()
        while self._recent and next(iter(self._recent.values())) < horizon:
            self._recent.popitem(last=False)
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

    def compaction_due(self, store: _Store) -> bool:
        """Compact a full vocabulary only when a quarter of the ring has turned over since
        its last compaction, so a column of ever-new labels costs amortised O(1)."""
        return self.removed_rows - store.compacted_at >= max(1, self._capacity // 4)

    def _evict(self, n: int, *, counted: bool = True) -> None:
        n = min(n, self._size)
        if n <= 0:
            return
        gone = (self._head + np.arange(n, dtype=np.intp)) % self._capacity
        for store in (*self._columns.values(), self._prediction):
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
        for store in (*self._columns.values(), self._prediction):
            store.resize(order, capacity)
        self._head, self._capacity = 0, capacity

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
        skip = max(0, n - self.limits.max_samples)  # a batch larger than the whole window
        keep = n - skip
        if keep == 0:
            return
        self.counters.rows += n
        self.counters.evicted_rows += skip
        self._evict(self._size + keep - self.limits.max_samples)
        if self._size + keep > self._capacity:
            grown = max(2 * self._capacity, self._size + keep, _INITIAL_CAPACITY)
            self._resize(min(self.limits.max_samples, grown))
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

    def _monitored(self, name: str) -> bool:
        return self.allowed_names is None or name in self.allowed_names

    def _column(self, key: ColumnKey) -> _Store | None:
        store = self._columns.get(key)
        if store is not None:
            return store
        if len(self._columns) >= self.limits.max_columns:
            return None
        store = self._columns[key] = _Store(self._capacity)
        return store


def _materialize(stores: Sequence[_Store], slots: npt.NDArray[np.intp], ftype: str) -> Column:
    """One feature's column from its named and positional storage (the first wins)."""
    if ftype == "categorical":
        table: dict[str, int] = {}
        codes = np.full(slots.size, -1, dtype=np.int32)
        for store in stores:
            more = store.labels(slots, table)
            codes = np.where(codes >= 0, codes, more).astype(np.int32)
        used, inverse = np.unique(codes[codes >= 0], return_inverse=True)
        labels = list(table)
        dense = np.full(slots.size, -1, dtype=np.int32)
        dense[codes >= 0] = inverse.astype(np.int32)
        return CategoricalColumn(dense, tuple(labels[i] for i in used.tolist()))
    values = np.full(slots.size, np.nan)
    for store in stores:
        numbers = store.numbers(slots)
        values = np.where(np.isnan(values), numbers, values)
    return values


def _event_nbytes(event: PayloadEvent) -> int:
    arrays: list[Values] = []
    if event.rows is not None:
        arrays.extend(event.rows.columns.values())
    if event.predictions is not None:
        arrays.append(event.predictions)
    return sum(a.nbytes + (64 * a.size if a.dtype == object else 0) for a in arrays) + 300


# --- the store -------------------------------------------------------------------------


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
