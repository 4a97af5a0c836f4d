"""The payload-log core: CloudEvents from KServe's payload logger -> a rolling window.

Pure: events are built as KServe's logger sends them (binary mode: ``ce-*`` headers and
the raw inference payload as body; the attribute names and types are those of
kserve/kserve pkg/logger), the clock is a number the test passes in.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import numpy as np
import pytest

from modelmonitor.core.codecs.cloudevents import (
    BATCH_CONTENT_TYPE,
    REQUEST_TYPE,
    RESPONSE_TYPE,
    STRUCTURED_CONTENT_TYPE,
    MalformedEventError,
    PayloadEvent,
    decode_request,
    parse_event,
    parse_events,
)
from modelmonitor.core.dataset import CategoricalColumn, Feature
from modelmonitor.core.spec import (
    FeatureSpec,
    MonitorSpec,
    PayloadLogSpec,
    ReferenceSpec,
    TargetSpec,
)
from modelmonitor.sources.payload.store import PayloadStore, PayloadStoreFullError
from modelmonitor.sources.payload.window import PayloadWindow, WindowLimits
from modelmonitor.sources.probe import V2Options

T0 = 1_700_000_000.0
NUM = [Feature("a", "numerical"), Feature("b", "numerical")]


def ce_headers(
    event_id: str,
    kind: str,
    *,
    namespace: str = "ml",
    service: str = "iris",
    endpoint: str = "default",
) -> dict[str, str]:
    """Binary-mode headers as KServe's logger sets them."""
    return {
        "Content-Type": "application/json",
        "Ce-Id": event_id,
        "Ce-Specversion": "1.0",
        "Ce-Type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "Ce-Source": f"http://localhost:9081/{service}",
        "Ce-Time": "2026-11-26T12:00:00.123456789Z",
        "Ce-Inferenceservicename": service,
        "Ce-Namespace": namespace,
        "Ce-Component": "predictor",
        "Ce-Endpoint": endpoint,
        "Ce-Metadata": "{}",
    }


def event(event_id: str, kind: str, body: Any, **kw: str) -> PayloadEvent:
    return parse_event(ce_headers(event_id, kind, **kw), json.dumps(body).encode())


def v1_pair(event_id: str, rows: list[Any], preds: list[Any], **kw: str) -> list[PayloadEvent]:
    return [
        event(event_id, "request", {"instances": rows}, **kw),
        event(event_id, "response", {"predictions": preds}, **kw),
    ]


def window(**kw: Any) -> PayloadWindow:
    limits = {"window_seconds": 60.0, "max_samples": 1000, "min_samples": 1, **kw}
    return PayloadWindow(WindowLimits(**limits))


def feed(w: PayloadWindow, events: list[PayloadEvent], now: float = T0) -> list[str]:
    return [w.add(e, now) for e in events]


def labels(col: Any) -> list[Any]:
    assert isinstance(col, CategoricalColumn)
    return list(col.labels())


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


# --- pairing and the window ----------------------------------------------------------------


def test_v1_positional_rows_map_to_features_in_order() -> None:
    w = window()
    assert feed(w, v1_pair("1", [[1.0, 10.0], [2.0, 20.0]], [0, 1])) == ["pending", "paired"]
    data = w.snapshot(T0, NUM, "prediction", "categorical")
    assert data is not None
    assert data.names == ["a", "b", "prediction"]
    np.testing.assert_array_equal(data["a"], [1.0, 2.0])
    np.testing.assert_array_equal(data["b"], [10.0, 20.0])
    assert labels(data["prediction"]) == ["0", "1"]
    counters = w.status(T0).counters
    assert (counters.received, counters.paired, counters.rows) == (2, 1, 2)


def test_v1_named_rows_with_missing_and_extra_keys() -> None:
    w = window()
    rows = [{"b": 5.0, "a": 1.0, "extra": "z"}, {"a": 2.0}]
    feed(w, v1_pair("1", rows, [0.5, 0.7]))
    data = w.snapshot(T0, NUM, "score", "numerical")
    assert data is not None
    np.testing.assert_array_equal(data["a"], [1.0, 2.0])
    np.testing.assert_array_equal(data["b"], [5.0, np.nan])
    np.testing.assert_array_equal(data["score"], [0.5, 0.7])


def test_named_and_positional_rows_meet_in_the_snapshot() -> None:
    w = window()
    feed(w, v1_pair("1", [[1.0, 10.0]], [0]))
    feed(w, v1_pair("2", [{"a": 2.0, "b": 20.0}], [1]))
    data = w.snapshot(T0, NUM)
    assert data is not None
    np.testing.assert_array_equal(data["a"], [1.0, 2.0])
    np.testing.assert_array_equal(data["b"], [10.0, 20.0])


def test_v2_tensor_request_with_mlserver_style_response() -> None:
    w = window()
    request = {
        "inputs": [
            {"name": "input-0", "shape": [3, 2], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}
        ]
    }
    response = {
        "model_name": "iris",
        "outputs": [
            {"name": "predict", "shape": [3, 1], "datatype": "INT64", "data": [2, 0, 1]},
            {"name": "predict_proba", "shape": [3, 3], "datatype": "FP64", "data": [0] * 9},
        ],
    }
    w.add(event("x", "request", request), T0)
    assert w.add(event("x", "response", response), T0) == "paired"
    data = w.snapshot(T0, NUM)
    assert data is not None
    np.testing.assert_array_equal(data["b"], [2.0, 4.0, 6.0])
    assert labels(data["prediction"]) == ["2", "0", "1"]


def test_v2_one_input_per_feature_with_categories() -> None:
    w = window()
    request = {
        "inputs": [
            {"name": "country", "shape": [3], "datatype": "BYTES", "data": ["de", "01234", "de"]},
            {"name": "amount", "shape": [3], "datatype": "FP64", "data": [1.0, None, 3.0]},
        ]
    }
    response = {
        "outputs": [{"name": "p", "shape": [3], "datatype": "BOOL", "data": [True, False, True]}]
    }
    feed(w, [event("x", "request", request), event("x", "response", response)])
    feats = [Feature("amount", "numerical"), Feature("country", "categorical")]
    data = w.snapshot(T0, feats, "fraud", "categorical")
    assert data is not None
    np.testing.assert_array_equal(data["amount"], [1.0, np.nan, 3.0])
    assert labels(data["country"]) == ["de", "01234", "de"]  # text stays text
    assert labels(data["fraud"]) == ["true", "false", "true"]
    numeric = w.snapshot(T0, feats, "fraud", "numerical")
    assert numeric is not None
    np.testing.assert_array_equal(numeric["fraud"], [1.0, 0.0, 1.0])


def test_v2_output_holding_predictions_can_be_named() -> None:
    body = {
        "outputs": [
            {
                "name": "predict_proba",
                "shape": [2, 2],
                "datatype": "FP64",
                "data": [0.9, 0.1, 0, 1],
            },
            {"name": "predict", "shape": [2], "datatype": "INT64", "data": [7, 8]},
        ]
    }
    headers = ce_headers("x", "response")
    first = parse_event(headers, json.dumps(body).encode())
    assert first.predictions is not None
    assert first.predictions.tolist() == ["0", "1"]  # probabilities: the most probable class
    named = parse_event(headers, json.dumps(body).encode(), v2=V2Options(output_name="predict"))
    assert named.predictions is not None
    assert named.predictions.tolist() == [7.0, 8.0]


def test_probabilities_become_the_most_probable_class() -> None:
    w = window()
    feed(w, v1_pair("1", [[1], [2]], [[0.1, 0.9], [0.8, 0.2]]))
    data = w.snapshot(T0, [Feature("a", "numerical")])
    assert data is not None
    assert labels(data["prediction"]) == ["1", "0"]


def test_numbers_spelled_as_labels_for_categorical_features() -> None:
    w = window()
    feed(w, v1_pair("1", [[2.0, "x"], [3, "y"], [None, None]], ["a", "b", "a"]))
    feats = [Feature("n", "categorical"), Feature("s", "categorical")]
    data = w.snapshot(T0, feats)
    assert data is not None
    assert labels(data["n"]) == ["2", "3", None]
    assert labels(data["s"]) == ["x", "y", None]
    col = data["n"]
    assert isinstance(col, CategoricalColumn)
    assert sorted(col.categories) == ["2", "3"]


def test_feature_never_seen_is_all_missing() -> None:
    w = window()
    feed(w, v1_pair("1", [[1.0]], [0]))
    data = w.snapshot(T0, [*NUM, Feature("c", "categorical")])
    assert data is not None
    np.testing.assert_array_equal(data["b"], [np.nan])
    assert labels(data["c"]) == [None]


def test_response_before_request_pairs_too() -> None:
    w = window()
    req, resp = v1_pair("1", [[1.0, 2.0]], [1])
    assert feed(w, [resp, req]) == ["pending", "paired"]
    assert len(w) == 1


def test_duplicates_are_counted_and_ignored() -> None:
    w = window()
    req, resp = v1_pair("1", [[1.0, 2.0]], [1])
    assert feed(w, [req, req, resp, resp, req]) == [
        "pending",
        "duplicate",
        "paired",
        "duplicate",
        "duplicate",
    ]
    status = w.status(T0)
    assert (status.rows, status.counters.duplicates, status.counters.paired) == (1, 3, 1)


def test_unpaired_halves_are_dropped_after_pending_seconds() -> None:
    w = window(pending_seconds=30.0)
    req, resp = v1_pair("1", [[1.0, 2.0]], [1])
    w.add(req, T0)
    assert w.status(T0 + 29).pending == 1
    assert w.status(T0 + 31).pending == 0
    assert w.status(T0 + 31).counters.dropped == 1
    assert w.add(resp, T0 + 32) == "pending"  # its request is gone: waits in turn


def test_unpaired_halves_are_bounded_in_count_and_rows() -> None:
    w = window(max_pending=3, max_samples=10)
    for i in range(5):
        w.add(event(str(i), "request", {"instances": [[1.0]]}), T0)
    status = w.status(T0)
    assert (status.pending, status.counters.dropped) == (3, 2)
    # the oldest went first: 0 and 1 no longer pair
    assert w.add(event("0", "response", {"predictions": [1]}), T0) == "pending"
    assert w.add(event("4", "response", {"predictions": [1]}), T0) == "paired"
    big = event("big", "request", {"instances": [[1.0]] * 11})
    w.add(big, T0)
    status = w.status(T0)  # more rows than maxSamples: the others make room
    assert (status.pending, status.counters.dropped) == (1, 5)


def test_pair_that_disagrees_on_rows_is_malformed() -> None:
    w = window()
    w.add(event("1", "request", {"instances": [[1.0], [2.0]]}), T0)
    with pytest.raises(MalformedEventError, match="1 prediction\\(s\\) for 2 request row"):
        w.add(event("1", "response", {"predictions": [1]}), T0)
    status = w.status(T0)
    assert (status.rows, status.pending, status.counters.malformed) == (0, 0, 1)


def test_window_expiry_drops_old_rows_first() -> None:
    w = window(window_seconds=60.0)
    feed(w, v1_pair("1", [[1.0, 1.0]], [0]), T0)
    feed(w, v1_pair("2", [[2.0, 2.0]], [0]), T0 + 30)
    data = w.snapshot(T0 + 61, NUM)
    assert data is not None
    np.testing.assert_array_equal(data["a"], [2.0])
    assert w.snapshot(T0 + 91, NUM) is None
    status = w.status(T0 + 91)
    assert (status.rows, status.counters.expired_rows) == (0, 2)


def test_clock_never_goes_back() -> None:
    w = window(window_seconds=60.0)
    feed(w, v1_pair("1", [[1.0, 1.0]], [0]), T0 + 100)
    feed(w, v1_pair("2", [[2.0, 2.0]], [0]), T0)  # an earlier "now" counts as T0 + 100
    data = w.snapshot(T0 + 150, NUM)
    assert data is not None
    assert data.n_rows == 2


def test_max_samples_keeps_the_newest_rows() -> None:
    w = window(max_samples=5)
    for i in range(4):
        feed(w, v1_pair(str(i), [[float(2 * i), 0.0], [float(2 * i + 1), 0.0]], [0, 0]))
    data = w.snapshot(T0, NUM)
    assert data is not None
    np.testing.assert_array_equal(data["a"], [3.0, 4.0, 5.0, 6.0, 7.0])
    assert w.status(T0).counters.evicted_rows == 3
    feed(w, v1_pair("big", [[float(i), 0.0] for i in range(100, 108)], [0] * 8))
    data = w.snapshot(T0, NUM)
    assert data is not None
    np.testing.assert_array_equal(data["a"], [103.0, 104.0, 105.0, 106.0, 107.0])


def test_min_samples_gates_the_snapshot() -> None:
    w = window(min_samples=3)
    feed(w, v1_pair("1", [[1.0, 1.0], [2.0, 2.0]], [0, 1]))
    assert w.snapshot(T0, NUM) is None
    status = w.status(T0)
    assert not status.ready
    assert "2 payload-log sample(s) in the last 60 s (minSamples 3)" in status.message
    snap = w.snapshot(T0, NUM, min_samples=2)
    assert snap is not None
    assert snap.n_rows == 2
    feed(w, v1_pair("2", [[3.0, 3.0]], [0]))
    assert w.status(T0).ready
    assert w.snapshot(T0, NUM) is not None


def test_empty_window_message_points_at_the_logger() -> None:
    w = window()
    assert "no event received yet" in w.status(T0).message
    w.add(event("1", "request", {"instances": [[1.0]]}), T0)
    assert "none paired (logger mode must be all)" in w.status(T0).message


def test_endpoint_filter_separates_canary_rows() -> None:
    w = window()
    feed(w, v1_pair("1", [[1.0, 0.0]], [0], endpoint="default"))
    feed(w, v1_pair("2", [[2.0, 0.0]], [1], endpoint="canary"))
    canary = w.snapshot(T0, NUM, endpoint="canary")
    assert canary is not None
    np.testing.assert_array_equal(canary["a"], [2.0])
    assert w.snapshot(T0, NUM, endpoint="nope") is None
    both = w.snapshot(T0, NUM)
    assert both is not None
    assert both.n_rows == 2


def test_ring_matches_a_plain_list_under_random_traffic() -> None:
    """Wrap-around, growth, shrinking, expiry and eviction against a naive model."""
    rng = random.Random(7)
    w = window(window_seconds=50.0, max_samples=300)
    kept: list[tuple[float, float, str]] = []  # (time, value, label)
    now = T0
    for i in range(400):
        now += rng.choice([0.0, 0.5, 2.0, 15.0])
        n = rng.choice([1, 3, 40, 120])
        values = [float(i * 1000 + j) for j in range(n)]
        cats = [rng.choice(["x", "y", "z"]) for _ in range(n)]
        rows = [[v, c] for v, c in zip(values, cats, strict=True)]
        feed(w, v1_pair(str(i), rows, cats), now)
        kept.extend((now, v, c) for v, c in zip(values, cats, strict=True))
        kept = [k for k in kept if k[0] >= now - 50.0][-300:]
        if i % 7 == 0:
            feats = [Feature("v", "numerical"), Feature("c", "categorical")]
            data = w.snapshot(now, feats, min_samples=0)
            if not kept:
                assert data is None
                continue
            assert data is not None
            np.testing.assert_array_equal(data["v"], [k[1] for k in kept])
            assert labels(data["c"]) == [k[2] for k in kept]
            assert labels(data["prediction"]) == [k[2] for k in kept]


def test_memory_stays_bounded_under_hostile_traffic() -> None:
    """Ever-new labels, ever-new columns, long strings and unpaired floods."""
    w = window(max_samples=500, max_columns=8, max_categories=50, max_pending=20)
    for i in range(300):
        rows = [{f"col{i % 40}": f"label-{i}-{j}" + "x" * 5000, "a": float(j)} for j in range(10)]
        feed(w, v1_pair(str(i), rows, [f"p{i}-{j}" for j in range(10)]), T0 + i)
        w.add(event(f"orphan-{i}", "request", {"instances": [[1.0]] * 10}), T0 + i)
    size = w.nbytes()
    # 500 rows x 9 stores x 12 bytes, <= 50 labels per store of <= 256 characters, 20 pending
    assert size < 500 * 12 * 10 + 9 * 2 * 50 * 400 + 20 * 2000, size
    status = w.status(T0 + 300)
    assert status.rows == 500
    assert status.pending == 20
    assert status.counters.truncated > 0
    data = w.snapshot(T0 + 300, [Feature("a", "numerical"), Feature("col0", "categorical")])
    assert data is not None
    pred = data["prediction"]
    assert isinstance(pred, CategoricalColumn)
    assert len(pred.categories) <= 50
    assert all(len(c) <= 256 for c in pred.categories)


def test_allowed_names_skip_unmonitored_columns() -> None:
    w = PayloadWindow(WindowLimits(min_samples=1), allowed_names=["a"])
    feed(w, v1_pair("1", [{"a": 1.0, "user_id": "u1"}], [0]))
    assert w.status(T0).counters.truncated == 0
    assert w.nbytes() < 10_000


# --- the store ---------------------------------------------------------------------------


def monitor_spec(
    target: str = "iris",
    kind: str = "InferenceService",
    *,
    max_samples: int = 1000,
    features: tuple[str, ...] = (),
) -> MonitorSpec:
    return MonitorSpec(
        target=TargetSpec(name=target, kind=kind),  # type: ignore[arg-type]
        reference=ReferenceSpec(source="inline"),
        features=tuple(FeatureSpec(name) for name in features),
        payload_log=PayloadLogSpec(window_seconds=600, min_samples=1, max_samples=max_samples),
    )


def test_store_registers_resolves_and_forgets() -> None:
    store = PayloadStore()
    w = store.register("ml", "m1", monitor_spec())
    assert w is not None
    assert w.limits.window_seconds == 600.0
    store.register("ml", "m2", monitor_spec())
    store.register("ml", "m3", monitor_spec("other"))
    store.register("ml", "m4", monitor_spec("iris", "Deployment"))
    store.register("prod", "m5", monitor_spec())
    assert store.resolve("ml", "iris") == ["m1", "m2"]
    assert store.window("ml", "m1") is w
    assert store.register("ml", "m1", monitor_spec()) is w  # same spec: same window
    assert store.forget("ml", "m1")
    assert not store.forget("ml", "m1")
    assert store.window("ml", "m1") is None
    assert store.resolve("ml", "iris") == ["m2"]
    no_log = MonitorSpec(target=TargetSpec("iris"), reference=ReferenceSpec(source="inline"))
    assert store.register("ml", "m2", no_log) is None
    assert store.window("ml", "m2") is None
    assert sorted(store) == [("ml", "m3"), ("ml", "m4"), ("prod", "m5")]


def test_store_update_keeps_rows_and_applies_new_bounds() -> None:
    store = PayloadStore()
    w = store.register("ml", "m", monitor_spec(max_samples=100))
    assert w is not None
    for i in range(10):
        feed(w, v1_pair(str(i), [[float(i), 0.0]], [0]))
    assert store.register("ml", "m", monitor_spec(max_samples=4)) is w
    data = w.snapshot(T0, NUM)
    assert data is not None
    np.testing.assert_array_equal(data["a"], [6.0, 7.0, 8.0, 9.0])


def test_store_update_stops_storing_columns_no_longer_monitored() -> None:
    store = PayloadStore()
    w = store.register("ml", "m", monitor_spec())
    assert w is not None
    feed(w, v1_pair("1", [{"a": 1.0, "b": 2.0}], [0]))
    store.register("ml", "m", monitor_spec(features=("a",)))
    feed(w, v1_pair("2", [{"a": 3.0, "b": 4.0}], [0]))
    data = w.snapshot(T0, NUM)
    assert data is not None
    np.testing.assert_array_equal(data["a"], [1.0, 3.0])
    np.testing.assert_array_equal(data["b"], [np.nan, np.nan])


def test_store_caps() -> None:
    store = PayloadStore(max_monitors=2, max_total_samples=1500)
    store.register("ml", "a", monitor_spec(max_samples=1000))
    with pytest.raises(PayloadStoreFullError, match="past 1500 samples"):
        store.register("ml", "b", monitor_spec(max_samples=600))
    store.register("ml", "b", monitor_spec(max_samples=500))
    with pytest.raises(PayloadStoreFullError, match="already collects for 2 monitors"):
        store.register("ml", "c", monitor_spec(max_samples=1))
    store.register("ml", "a", monitor_spec(max_samples=900))  # an update is no new monitor


def test_store_counters_and_rejections() -> None:
    store = PayloadStore()
    w = store.register("ml", "m", monitor_spec())
    assert w is not None
    feed(w, v1_pair("1", [[1.0]], [0]))
    w.record_malformed()
    store.reject("unknown_monitor")
    store.reject("unknown_monitor")
    counters = store.counters()[("ml", "m")]
    assert counters.as_dict() == {
        "received": 3,
        "paired": 1,
        "rows": 1,
        "dropped": 0,
        "duplicates": 0,
        "malformed": 1,
        "expired_rows": 0,
        "evicted_rows": 0,
        "truncated": 0,
    }
    assert store.rejected == {"unknown_monitor": 2}
