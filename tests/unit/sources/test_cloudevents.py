"""Decoding the CloudEvents of KServe's payload logger: binary, structured and batched modes.

Pure: events are built as KServe's logger sends them (tests/unit/sources/payload_events.py).
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from modelmonitor.core.codecs.cloudevents import (
    BATCH_CONTENT_TYPE,
    REQUEST_TYPE,
    RESPONSE_TYPE,
    STRUCTURED_CONTENT_TYPE,
    MalformedEventError,
    decode_request,
    parse_event,
    parse_events,
)
from tests.unit.sources.payload_events import (
    ce_headers,
    event,
)

# --- parsing -----------------------------------------------------------------------------


def test_binary_mode_v1_request_and_response() -> None:
    req = event("abc", "request", {"instances": [[1.0, 2.0], [3.0, 4.0]]}, endpoint="canary")
    assert (req.id, req.kind, req.protocol) == ("abc", "request", "v1")
    assert (req.namespace, req.service, req.endpoint, req.component) == (
        "ml",
        "iris",
        "canary",
        "predictor",
    )
    assert req.time is not None
    assert req.time.isoformat() == "2026-11-26T12:00:00.123456+00:00"
    assert req.rows is not None
    assert req.n_rows == 2
    assert sorted(req.rows.columns) == [0, 1]
    np.testing.assert_array_equal(req.rows.columns[1], [2.0, 4.0])
    resp = event("abc", "response", {"predictions": [0, 2]})
    assert resp.kind == "response"
    assert resp.predictions is not None
    assert resp.predictions.tolist() == [0.0, 2.0]


def test_header_names_are_case_insensitive_and_values_percent_decoded() -> None:
    headers = {k.lower(): v for k, v in ce_headers("a%20b", "request").items()}
    headers["ce-inferenceservicename"] = "iris%C3%A9"
    e = parse_event(headers, b'{"instances": [[1]]}')
    assert (e.id, e.service) == ("a b", "irisé")


def test_structured_and_batched_modes() -> None:
    attrs = {
        "specversion": "1.0",
        "id": "s1",
        "type": REQUEST_TYPE,
        "source": "x",
        "namespace": "ml",
        "inferenceservicename": "iris",
    }
    structured = {**attrs, "data": {"instances": [{"a": 1, "b": "x"}]}}
    e = parse_event({"content-type": STRUCTURED_CONTENT_TYPE}, json.dumps(structured).encode())
    assert (e.id, e.kind, e.service) == ("s1", "request", "iris")
    assert e.rows is not None
    assert sorted(e.rows.columns, key=str) == ["a", "b"]
    encoded = base64.b64encode(b'{"predictions": [1]}').decode()
    response = {**attrs, "type": RESPONSE_TYPE, "data_base64": encoded}
    batch = parse_events(
        {"Content-Type": f"{BATCH_CONTENT_TYPE}; charset=utf-8"},
        json.dumps([structured, response]).encode(),
    )
    assert [b.kind for b in batch] == ["request", "response"]


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"Content-Type": "application/json"}, b"{}", "no ce-specversion header"),
        (ce_headers("x", "request") | {"Ce-Specversion": "0.3"}, b"{}", "specversion '0.3'"),
        (ce_headers("", "request"), b'{"instances": []}', "has no id"),
        (ce_headers("x", "request") | {"Ce-Type": "dev.knative.foo"}, b"{}", "event type"),
        (ce_headers("x", "request"), b"", "has no data"),
        (ce_headers("x", "request"), b"{not json", "is not JSON"),
        (ce_headers("x", "request"), b"[1, 2]", "JSON list, expected an object"),
        (ce_headers("x", "request"), b'{"rows": []}', "neither 'instances'"),
        (ce_headers("x", "response"), b'{"result": 1}', "neither 'predictions'"),
        (ce_headers("x", "request") | {"Ce-Time": "yesterday"}, b"{}", "RFC 3339"),
        (ce_headers("x", "request"), b'{"instances": [[1, 2], [3]]}', "different lengths"),
        (ce_headers("x", "request"), b'{"instances": [[1], {"a": 1}]}', "mix"),
        (ce_headers("x", "request"), b'{"instances": 5}', "expected a list"),
        (ce_headers("x", "request"), b'{"inputs": []}', "'inputs' is empty"),
        (
            ce_headers("x", "request"),
            b'{"inputs": [{"name": "i", "shape": [2, 2], "datatype": "FP64", "data": [1]}]}',
            "does not fit",
        ),
        (
            ce_headers("x", "request"),
            b'{"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},'
            b' {"name": "b", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]}]}',
            "disagree on the number of rows",
        ),
        (ce_headers("x", "response"), b'{"predictions": {"a": 1}}', "expected a list"),
        (ce_headers("x", "response"), b'{"outputs": [{"name": "p"}]}', "no valid shape"),
        ({"Content-Type": STRUCTURED_CONTENT_TYPE}, b"[]", "must be a JSON object"),
        ({"Content-Type": BATCH_CONTENT_TYPE}, b"{}", "must be a JSON array"),
    ],
)
def test_malformed_events_say_why(headers: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(MalformedEventError, match=message) as info:
        parse_events(headers, body)
    assert "\n" not in str(info.value)


def test_malformed_payload_names_the_event() -> None:
    with pytest.raises(MalformedEventError, match=r"^request r7: 'instances'"):
        parse_event(ce_headers("r7", "request"), b'{"instances": "x"}')


def test_v1_instance_layouts() -> None:
    protocol, rows = decode_request({"instances": [{"a": 1, "c": "x"}, {"a": 2, "b": None}]})
    assert protocol == "v1"
    assert rows.n_rows == 2
    assert sorted(rows.columns, key=str) == ["a", "b", "c"]
    assert rows.columns["c"].tolist() == ["x", None]
    _, single = decode_request({"instances": [1.5, 2.5]})
    assert list(single.columns) == [0]
    _, empty = decode_request({"instances": []})
    assert empty.n_rows == 0


def test_v2_input_layouts() -> None:
    tensor = {
        "inputs": [
            {"name": "input-0", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}
        ]
    }
    protocol, rows = decode_request(tensor)
    assert protocol == "v2"
    assert sorted(rows.columns) == [0, 1, 2]
    np.testing.assert_array_equal(rows.columns[2], [3.0, 6.0])
    nested = {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]
    }
    np.testing.assert_array_equal(decode_request(nested)[1].columns[1], [2.0, 4.0])
    per_feature = {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.5, 2.5]},
            {"name": "country", "shape": [2, 1], "datatype": "BYTES", "data": ["de", "fr"]},
        ],
    }
    _, named = decode_request(per_feature)
    assert sorted(named.columns, key=str) == ["amount", "country"]
    assert named.columns["country"].tolist() == ["de", "fr"]
    mixed = {
        "inputs": [
            {"name": "a", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]},
            {"name": "b", "shape": [1], "datatype": "FP64", "data": [1]},
        ]
    }
    with pytest.raises(MalformedEventError, match="one \\[rows, features\\] tensor"):
        decode_request(mixed)
