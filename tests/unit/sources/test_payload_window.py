"""The payload log's window (pairing, ring buffers, bounds) and the store of all windows.

Pure: events are built as KServe's logger sends them (tests/unit/sources/payload_events.py),
the clock is a number the test passes in.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from modelmonitor.core.codecs.cloudevents import (
    MalformedEventError,
    parse_event,
)
from modelmonitor.core.codecs.inference import V2Options
from modelmonitor.core.dataset import CategoricalColumn, Feature
from modelmonitor.core.spec import (
    FeatureSpec,
    MonitorSpec,
    PayloadLogSpec,
    ReferenceSpec,
    TargetSpec,
)
from modelmonitor.sources.payload.limits import WindowLimits
from modelmonitor.sources.payload.store import PayloadStore, PayloadStoreFullError
from modelmonitor.sources.payload.window import PayloadWindow
from tests.unit.sources.payload_events import (
    NUM,
    T0,
    ce_headers,
    event,
    feed,
    labels,
    v1_pair,
    window,
)

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
    w = store.register("ml", "m1", monitor_spec(), "t" * 43)
    assert w is not None
    assert w.limits.window_seconds == 600.0
    store.register("ml", "m2", monitor_spec(), "t" * 43)
    store.register("ml", "m3", monitor_spec("other"), "t" * 43)
    store.register("ml", "m4", monitor_spec("iris", "Deployment"), "t" * 43)
    store.register("prod", "m5", monitor_spec(), "t" * 43)
    assert store.resolve("ml", "iris") == ["m1", "m2"]
    assert store.window("ml", "m1") is w
    assert store.register("ml", "m1", monitor_spec(), "t" * 43) is w  # same spec: same window
    assert store.forget("ml", "m1")
    assert not store.forget("ml", "m1")
    assert store.window("ml", "m1") is None
    assert store.resolve("ml", "iris") == ["m2"]
    no_log = MonitorSpec(target=TargetSpec("iris"), reference=ReferenceSpec(source="inline"))
    assert store.register("ml", "m2", no_log, "t" * 43) is None
    assert store.window("ml", "m2") is None
    assert sorted(store) == [("ml", "m3"), ("ml", "m4"), ("prod", "m5")]


def test_store_update_keeps_rows_and_applies_new_bounds() -> None:
    store = PayloadStore()
    w = store.register("ml", "m", monitor_spec(max_samples=100), "t" * 43)
    assert w is not None
    for i in range(10):
        feed(w, v1_pair(str(i), [[float(i), 0.0]], [0]))
    assert store.register("ml", "m", monitor_spec(max_samples=4), "t" * 43) is w
    data = w.snapshot(T0, NUM)
    assert data is not None
    np.testing.assert_array_equal(data["a"], [6.0, 7.0, 8.0, 9.0])


def test_store_update_stops_storing_columns_no_longer_monitored() -> None:
    store = PayloadStore()
    w = store.register("ml", "m", monitor_spec(), "t" * 43)
    assert w is not None
    feed(w, v1_pair("1", [{"a": 1.0, "b": 2.0}], [0]))
    store.register("ml", "m", monitor_spec(features=("a",)), "t" * 43)
    feed(w, v1_pair("2", [{"a": 3.0, "b": 4.0}], [0]))
    data = w.snapshot(T0, NUM)
    assert data is not None
    np.testing.assert_array_equal(data["a"], [1.0, 3.0])
    np.testing.assert_array_equal(data["b"], [np.nan, np.nan])


def test_store_caps() -> None:
    store = PayloadStore(max_monitors=2, max_total_samples=1500)
    store.register("ml", "a", monitor_spec(max_samples=1000), "t" * 43)
    with pytest.raises(PayloadStoreFullError, match="past 1500 samples"):
        store.register("ml", "b", monitor_spec(max_samples=600), "t" * 43)
    store.register("ml", "b", monitor_spec(max_samples=500), "t" * 43)
    with pytest.raises(PayloadStoreFullError, match="already collects for 2 monitors"):
        store.register("ml", "c", monitor_spec(max_samples=1), "t" * 43)
    store.register(
        "ml", "a", monitor_spec(max_samples=900), "t" * 43
    )  # an update is no new monitor


def test_store_counters_and_rejections() -> None:
    store = PayloadStore()
    w = store.register("ml", "m", monitor_spec(), "t" * 43)
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
        "over_budget": 0,
    }
    assert store.rejected == {"unknown_monitor": 2}
