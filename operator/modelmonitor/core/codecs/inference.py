"""Inference protocol codecs: rows -> request bodies, response bodies -> one prediction per row.

Pure, shared by the probe (which sends requests) and the payload-log collector (which
reads logged ones). One codec per protocol: ``v1`` (KServe v1: ``instances`` /
``predictions``), ``v2`` (Open Inference Protocol: named, typed tensors) and ``json``
(plain JSON with a field mapping). A body that does not hold one prediction per row
raises :class:`BadResponseError` with a one-line reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from modelmonitor.core.dataset import CategoricalColumn, Column, Dataset, FeatureType, FloatArray

PROTOCOLS = ("v1", "v2", "json")
V2_NUMERIC_DATATYPES = ("FP64", "FP32", "INT64")
V2_LAYOUTS = ("auto", "tensor", "columns")
DEFAULT_JSON_PATH = "/predict"

JsonScalar: TypeAlias = str | int | float | bool | None
IntArray: TypeAlias = npt.NDArray[np.intp]


class BadResponseError(ValueError):
    """A response body that does not hold one prediction per row sent."""


# --- options --------------------------------------------------------------------------


@dataclass(frozen=True)
class V2Options:
    """How rows become Open Inference Protocol tensors, and which output to read.

    ``layout``: ``tensor`` sends one input ``input_name`` of shape ``[rows, features]``
    (what a scikit-learn model behind MLServer or KServe expects); ``columns`` sends one
    input per feature, shape ``[rows]``, BYTES for categorical features, and marks the
    request as a table (``parameters.content_type: pd``); ``auto`` picks ``tensor`` when
    every feature is numerical, else ``columns``.
    """

    layout: Literal["auto", "tensor", "columns"] = "auto"
    input_name: str = "input-0"
    numeric_datatype: Literal["FP64", "FP32", "INT64"] = "FP64"
    outputs: tuple[str, ...] = ()  # requested outputs (e.g. predict, predict_proba); () = default
    output_name: str | None = None  # the output holding predictions; None = the first one
    probability_output: str | None = None  # an output with per-class probabilities
    parameters: Mapping[str, Any] = field(default_factory=dict)  # extra request parameters


# --- rows -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RowBatch:
    """Rows ready for JSON: numbers as floats (non-finite as null), categories as strings."""

    features: tuple[str, ...]
    types: tuple[FeatureType, ...]
    columns: tuple[tuple[JsonScalar, ...], ...]  # one tuple of values per feature

    def __post_init__(self) -> None:
        if not (len(self.features) == len(self.types) == len(self.columns)):
            raise ValueError("features, types and columns must have the same length")
        if len({len(c) for c in self.columns}) > 1:
            raise ValueError("columns of a batch must have the same length")

    @property
    def n_rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def rows(self) -> list[list[JsonScalar]]:
        return [list(row) for row in zip(*self.columns, strict=True)]

    def records(self) -> list[dict[str, JsonScalar]]:
        return [
            dict(zip(self.features, row, strict=True)) for row in zip(*self.columns, strict=True)
        ]


def _json_values(column: Column) -> list[JsonScalar]:
    if isinstance(column, CategoricalColumn):
        return [None if v is None else str(v) for v in column.labels().tolist()]
    finite = np.isfinite(column)
    values: list[JsonScalar] = column.tolist()
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            values[i] = None
    return values


def make_batches(
    rows: Dataset, features: Sequence[str], batch_size: int
) -> list[tuple[IntArray, RowBatch]]:
    """Split ``rows`` (in order) into batches of the named ``features``.

    Returns (row indices, batch) pairs. Raise ValueError naming a missing feature.
    """
    missing = [name for name in features if name not in rows]
    if missing:
        raise ValueError(f"probe rows lack the feature column(s) {', '.join(missing)}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    values = [_json_values(rows[name]) for name in features]
    types: tuple[FeatureType, ...] = tuple(
        "categorical" if isinstance(rows[name], CategoricalColumn) else "numerical"
        for name in features
    )
    batches = []
    for start in range(0, rows.n_rows, batch_size):
        stop = min(start + batch_size, rows.n_rows)
        batch = RowBatch(
            features=tuple(features),
            types=types,
            columns=tuple(tuple(col[start:stop]) for col in values),
        )
        batches.append((np.arange(start, stop, dtype=np.intp), batch))
    return batches


# --- requests -------------------------------------------------------------------------


def encode_request(
    protocol: str, batch: RowBatch, *, v2: V2Options | None = None, input_field: str = "instances"
) -> dict[str, Any]:
    """The JSON body for ``batch`` in ``protocol`` (``input_field``: json only)."""
    if protocol == "v1":
        return {"instances": batch.rows()}
    if protocol == "v2":
        return _build_v2(v2 or V2Options(), batch)
    if protocol == "json":
        return _nest(input_field, batch.records())
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {}
    node = body
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return body


def _v2_numbers(values: Sequence[JsonScalar], datatype: str) -> list[JsonScalar]:
    if datatype != "INT64":
        return list(values)
    out: list[JsonScalar] = []
    for v in values:
        if isinstance(v, float) and not v.is_integer():
            raise ValueError(f"value {v!r} is not an integer; INT64 inputs need whole numbers")
        out.append(None if v is None else int(v))
    return out


def _build_v2(options: V2Options, batch: RowBatch) -> dict[str, Any]:
    all_numerical = all(t == "numerical" for t in batch.types)
    layout = options.layout
    if layout == "auto":
        layout = "tensor" if all_numerical else "columns"
    n = batch.n_rows
    dtype = options.numeric_datatype
    parameters = dict(options.parameters)
    if layout == "tensor":
        all_categorical = all(t == "categorical" for t in batch.types)
        if not (all_numerical or all_categorical):
            raise ValueError(
                "v2 layout 'tensor' needs features of one type; use layout 'columns' "
                "for a mix of numerical and categorical features"
            )
        flat = [v for row in zip(*batch.columns, strict=True) for v in row]
        inputs = [
            {
                "name": options.input_name,
                "shape": [n, len(batch.features)],
                "datatype": dtype if all_numerical else "BYTES",
                "data": _v2_numbers(flat, dtype) if all_numerical else flat,
            }
        ]
    else:
        inputs = [
            {
                "name": name,
                "shape": [n],
                "datatype": dtype if kind == "numerical" else "BYTES",
                "data": _v2_numbers(col, dtype) if kind == "numerical" else list(col),
            }
            for name, kind, col in zip(batch.features, batch.types, batch.columns, strict=True)
        ]
        parameters.setdefault("content_type", "pd")
    body: dict[str, Any] = {"inputs": inputs}
    if options.outputs:
        body["outputs"] = [{"name": name} for name in options.outputs]
    if parameters:
        body["parameters"] = parameters
    return body


# --- responses ------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchOutput:
    """What one response said about its rows: a value per row, probabilities, or both."""

    values: tuple[Any, ...] | None
    probabilities: FloatArray | None = None  # shape (rows, classes)


def decode_json(body: bytes) -> Any:
    """Parse a response body; BadResponseError when it is not JSON."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        snippet = body[:80].decode("utf-8", "replace")
        raise BadResponseError(f"response is not JSON: {snippet!r}") from exc


def parse_predictions(
    protocol: str,
    payload: Any,
    n_rows: int,
    *,
    v2: V2Options | None = None,
    output_field: str = "predictions",
) -> BatchOutput:
    """The codec behind :func:`parse_response`, without an endpoint's configuration
    (the payload-log collector reads logged responses with it)."""
    if protocol == "v1":
        return _parse_items(_field(payload, "predictions"), n_rows, "predictions")
    if protocol == "v2":
        return _parse_v2(v2 or V2Options(), payload, n_rows)
    if protocol == "json":
        return _parse_items(_field(payload, output_field), n_rows, output_field)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def _field(payload: Any, dotted: str) -> Any:
    node = payload
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            have = ", ".join(sorted(map(str, node))) if isinstance(node, Mapping) else "none"
            raise BadResponseError(f"response has no field {dotted!r} (fields: {have or 'none'})")
        node = node[key]
    return node


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _parse_items(items: Any, n_rows: int, what: str) -> BatchOutput:
    """v1/json: a list of scalars, one-element lists, or per-class probability lists."""
    if not isinstance(items, list):
        raise BadResponseError(f"{what!r} is {type(items).__name__}, expected a list")
    if len(items) != n_rows:
        raise BadResponseError(f"{what!r} has {len(items)} item(s) for {n_rows} row(s) sent")
    if all(isinstance(v, list) for v in items):
        widths = {len(v) for v in items}
        if widths == {1}:
            items = [v[0] for v in items]
        elif (
            widths not in ({0}, set())
            and len(widths) == 1
            and all(_is_number(x) for v in items for x in v)
        ):
            return BatchOutput(None, np.asarray(items, dtype=np.float64).reshape(n_rows, -1))
        else:
            raise BadResponseError(
                f"{what!r} holds lists of sizes {sorted(widths)}; expected one value per "
                "row or equal-length lists of class probabilities"
            )
    for i, v in enumerate(items):
        if isinstance(v, Mapping | list):
            raise BadResponseError(
                f"{what}[{i}] is {type(v).__name__}; expected a value, or a list of "
                "class probabilities for every row"
            )
    return BatchOutput(tuple(items))


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise BadResponseError(f"tensor data is {type(data).__name__}, expected a list")
    if any(isinstance(v, list) for v in data):
        flat: list[Any] = []
        for v in data:
            flat.extend(_flatten(v) if isinstance(v, list) else [v])
        return flat
    return data


def v2_tensor(
    tensor: Any, n_rows: int, what: str = "output"
) -> tuple[str, list[int], str, list[Any]]:
    """Check one Open Inference Protocol tensor (an output, or a logged request's input)
    of ``n_rows`` rows and shape ``[rows]`` or ``[rows, k]``: (name, shape, datatype,
    flat data), or BadResponseError naming what is wrong."""
    if not isinstance(tensor, Mapping):
        raise BadResponseError(f"an {what} is not an object")
    name = str(tensor.get("name", "?"))
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadResponseError(f"{what} {name!r} has no valid shape: {shape!r}")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str):
        raise BadResponseError(f"{what} {name!r} has no datatype")
    data = _flatten(tensor.get("data"))
    if math.prod(shape) != len(data):
        raise BadResponseError(f"{what} {name!r}: shape {shape} does not fit {len(data)} value(s)")
    if shape[0] != n_rows:
        raise BadResponseError(f"{what} {name!r} has {shape[0]} row(s) for {n_rows} row(s) sent")
    if len(shape) > 2:
        raise BadResponseError(f"{what} {name!r} has shape {shape}; expected [rows] or [rows, k]")
    return name, shape, datatype, data


def _v2_probabilities(name: str, shape: list[int], datatype: str, data: list[Any]) -> FloatArray:
    if datatype in ("BYTES", "BOOL") or not all(_is_number(v) for v in data):
        raise BadResponseError(f"output {name!r} ({datatype}) does not hold probabilities")
    return np.asarray(data, dtype=np.float64).reshape(shape[0], -1)


def _parse_v2(options: V2Options, payload: Any, n_rows: int) -> BatchOutput:
    outputs = _field(payload, "outputs")
    if not isinstance(outputs, list) or not outputs:
        raise BadResponseError("'outputs' is empty or not a list")
    tensors: dict[str, tuple[str, list[int], str, list[Any]]] = {}
    for raw in outputs:
        tensor = v2_tensor(raw, n_rows)
        tensors.setdefault(tensor[0], tensor)
    pred_name = options.output_name or next(iter(tensors))
    if pred_name not in tensors:
        raise BadResponseError(
            f"no output {pred_name!r} in the response (outputs: {', '.join(tensors)})"
        )
    name, shape, datatype, data = tensors[pred_name]
    probabilities = None
    if options.probability_output is not None and options.probability_output in tensors:
        probabilities = _v2_probabilities(*tensors[options.probability_output])
    if len(shape) == 2 and shape[1] != 1:
        if shape[1] == 0:
            raise BadResponseError(f"output {name!r} has shape {shape}")
        return BatchOutput(None, _v2_probabilities(name, shape, datatype, data))
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in data):
            raise BadResponseError(f"output {name!r} is BYTES but holds non-strings")
    elif not all(v is None or _is_number(v) or isinstance(v, bool) for v in data):
        raise BadResponseError(f"output {name!r} ({datatype}) holds non-numbers")
    return BatchOutput(tuple(data), probabilities)


# --- predictions ----------------------------------------------------------------------


def label_text(value: Any) -> str | None:
    """A class label as text, as predictions and golden labels share it (2.0 -> "2")."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _class_values(out: BatchOutput, classes: tuple[str, ...] | None) -> tuple[Any, ...]:
    if out.values is not None:
        return out.values
    assert out.probabilities is not None
    prob = out.probabilities
    if prob.shape[1] == 1:  # one column: the positive class's probability
        idx = (prob[:, 0] >= 0.5).astype(np.intp)
    else:
        idx = np.argmax(np.where(np.isfinite(prob), prob, -np.inf), axis=1)
    if classes is not None:
        k = max(prob.shape[1], 2)
        if len(classes) != k:
            raise BadResponseError(f"{k} probability column(s) but {len(classes)} class name(s)")
        return tuple(classes[i] for i in idx.tolist())
    return tuple(idx.tolist())


def prediction_values(
    out: BatchOutput, prediction_type: FeatureType, classes: tuple[str, ...] | None = None
) -> list[Any]:
    """The per-row predictions of one response, as label text or floats."""
    if prediction_type == "categorical":
        return [label_text(v) for v in _class_values(out, classes)]
    if out.values is None:
        raise BadResponseError("the response holds class probabilities; expected numbers")
    values: list[Any] = []
    for v in out.values:
        if v is None:
            values.append(math.nan)
        elif _is_number(v):
            values.append(float(v))
        else:
            raise BadResponseError(f"prediction {v!r} is not a number")
    return values
