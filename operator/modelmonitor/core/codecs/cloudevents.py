"""KServe payload-logger CloudEvents: one HTTP request -> typed request and response events.

KServe's payload logger (``spec.predictor.logger`` of an InferenceService) POSTs every
inference request and every successful response as a CloudEvent 1.0: type
``org.kubeflow.serving.inference.request`` / ``...inference.response``, the same ``id``
for both halves of one call, extensions ``inferenceservicename``, ``namespace``,
``component``, ``endpoint`` (``default`` or ``canary``) and ``metadata``, and the raw
inference payload as data.

:func:`parse_events` / :func:`parse_event` read one HTTP request (headers + body) in
binary mode (``ce-*`` headers, payload as body), structured mode
(``application/cloudevents+json``) or batched mode
(``application/cloudevents-batch+json``) into :class:`PayloadEvent` objects: a request's
rows (KServe v1 ``instances`` or Open Inference Protocol v2 ``inputs``) or a response's
predictions (v1 ``predictions`` or v2 ``outputs``, read by the inference codecs).
Anything else raises :class:`MalformedEventError` with a one-line reason. Pure: bytes in,
events out.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from modelmonitor.core.codecs.inference import (
    BadResponseError,
    V2Options,
    parse_predictions,
    prediction_values,
    v2_tensor,
)
from modelmonitor.core.dataset import FloatArray

REQUEST_TYPE = "org.kubeflow.serving.inference.request"


RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


EVENT_KINDS: Mapping[str, Literal["request", "response"]] = {
    REQUEST_TYPE: "request",
    RESPONSE_TYPE: "response",
}


STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"


BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


SPEC_VERSION = "1.0"


MAX_BATCH_EVENTS = 1000


EventKind: TypeAlias = Literal["request", "response"]


ColumnKey: TypeAlias = str | int  # a feature name, or a position in the model's inputs


Values: TypeAlias = npt.NDArray[Any]  # float64, or object (str / float / None)


class MalformedEventError(ValueError):
    """An event (or a pair of them) that cannot be read; the message is one line."""


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
    probabilities: FloatArray | None = None  # a response's class probabilities (rows, classes)

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
            predictions = probabilities = None
        else:
            protocol, predictions, probabilities = decode_response(data, v2)
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
        probabilities=probabilities,
    )


def _time(text: str | None, where: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEventError(f"{where}time {text!r} is not an RFC 3339 timestamp") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


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
) -> tuple[Literal["v1", "v2"], Values, FloatArray | None]:
    """A logged response body as one prediction per row: v1 ``predictions`` or v2
    ``outputs`` (class probabilities become the most probable class's index), and the
    class probabilities when the body holds them (v1 per-class lists, a v2 output of
    shape ``[rows, classes]``, or ``v2.probability_output``)."""
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
    return protocol, _to_array(list(values)), out.probabilities


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
