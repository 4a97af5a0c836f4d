"""Late labels: the batch codec, the buffer of served predictions waiting for labels, the
window that feeds it (row ids, byte share), and a run that joins them (realized next to
the estimate, concept drift). What cannot join is counted, never raised."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from modelmonitor.core.codecs.cloudevents import parse_event
from modelmonitor.core.codecs.labels import (
    MAX_ID_CHARS,
    LabelBatch,
    MalformedLabelsError,
    parse_label_csv,
    parse_labels,
    row_id,
)
from modelmonitor.core.report import DriftSummary, Report
from modelmonitor.core.spec import LabelsSpec, MonitorSpec, SpecError, parse_spec
from modelmonitor.core.verdict import decide
from modelmonitor.engine.runner import InlineRunner
from modelmonitor.sources.payload.labels import LabelBuffer
from modelmonitor.sources.payload.store import PayloadStore
from tests.unit.operator.test_performance_runs import NOW, REFERENCE, Model, runner
from tests.unit.operator.test_runner import Objects
from tests.unit.sources.payload_events import T0, feed, v1_pair, window

# --- the batch ----------------------------------------------------------------------------


def test_a_batch_is_an_array_or_an_object_with_labels() -> None:
    plain = parse_labels(b'[{"id": "a", "label": 1}, {"id": 7, "label": "cat"}]')
    assert plain == LabelBatch(("a", "7"), ("1", "cat"))
    wrapped = parse_labels(b'{"labels": [{"id": "a", "label": 2.0}, {"id": "b", "label": true}]}')
    assert wrapped == LabelBatch(("a", "b"), ("2", "true"))  # 2.0 is class "2", as predictions


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not JSON"),
        (b'{"labels": [], "more": 1}', "only that"),
        (b'{"id": "a", "label": 1}', "only that"),
        (b'"a"', "JSON array"),
        (b"[1]", "not an object"),
        (b'[{"label": 1}]', "has no 'id'"),
        (b'[{"id": "a"}]', "has no 'label'"),
        (b'[{"id": null, "label": 1}]', "id must be text"),
        (b'[{"id": true, "label": 1}]', "id must be text"),
        (b'[{"id": "", "label": 1}]', "1-256 characters"),
        (b'[{"id": "a", "label": null}]', "label must be text"),
        (b'[{"id": "a", "label": [1]}]', "label must be text"),
        (b'[{"id": "a", "label": NaN}]', "finite"),
    ],
)
def test_a_bad_batch_is_refused_whole_with_its_reason(body: bytes, words: str) -> None:
    with pytest.raises(MalformedLabelsError, match=words):
        parse_labels(body)


def test_an_id_longer_than_any_request_id_is_refused() -> None:
    body = json.dumps([{"id": "x" * (MAX_ID_CHARS + 1), "label": 1}]).encode()
    with pytest.raises(MalformedLabelsError, match="characters"):
        parse_labels(body)


def test_row_ids_are_the_request_id_or_id_colon_row() -> None:
    assert row_id("r1", 0, 1) == "r1"
    assert [row_id("r1", i, 3) for i in range(3)] == ["r1:0", "r1:1", "r1:2"]


# --- the buffer ---------------------------------------------------------------------------


def served(buffer: LabelBuffer, ids: list[str], now: float = T0) -> None:
    proba = np.tile([0.3, 0.7], (len(ids), 1))
    buffer.serve(ids, proba, now)


def test_labels_join_by_id_and_what_cannot_join_is_counted() -> None:
    buffer = LabelBuffer(600, 100)
    served(buffer, ["a", "b", "c"])
    out = buffer.label(["a", "b", "zz", "a"], ["1", "0", "1", "0"], T0 + 1)
    assert (out.matched, out.unknown_ids, out.duplicates, out.late) == (2, 1, 1, 0)
    proba, labels = buffer.snapshot()
    assert proba.shape == (3, 2)
    assert labels == ["0", "0", None]  # a relabelled id keeps its last label
    c = buffer.counters
    assert (c.received, c.matched, c.unknown_ids, c.duplicates) == (4, 2, 1, 1)


def test_a_prediction_waits_label_delay_then_its_label_is_late() -> None:
    buffer = LabelBuffer(600, 100)
    served(buffer, ["a", "b"])
    buffer.label(["a"], ["1"], T0 + 10)
    out = buffer.label(["b"], ["1"], T0 + 601)
    assert (out.matched, out.late, out.unknown_ids) == (0, 1, 0)
    assert len(buffer) == 0
    assert buffer.counters.expired == 1  # b left unlabelled; a left labelled
    # The ids that left are remembered one more labelDelay, then a label is unknown.
    assert buffer.label(["b"], ["1"], T0 + 1300).unknown_ids == 1


def test_max_predictions_keeps_the_newest_and_memory_follows() -> None:
    buffer = LabelBuffer(600, 3)
    served(buffer, [f"r{i}" for i in range(10)])
    assert len(buffer) == 3
    out = buffer.label(["r6", "r9", "r0"], ["1", "1", "1"], T0)
    # r6 left recently (late); r0 left more than maxPredictions ids ago (unknown)
    assert (out.late, out.matched, out.unknown_ids) == (1, 1, 1)
    before = buffer.nbytes()
    buffer.shed(2)
    buffer.forget_gone()
    assert len(buffer) == 1
    assert buffer.nbytes() < before
    assert buffer.counters.expired == 9


def test_rows_of_another_width_are_not_kept() -> None:
    buffer = LabelBuffer(600, 100)
    served(buffer, ["a"])
    buffer.serve(["b"], np.asarray([[0.2, 0.3, 0.5]]), T0)
    assert len(buffer) == 1
    buffer.serve(["c"], np.zeros((2, 2)), T0)  # ids and rows disagree: nothing kept
    assert len(buffer) == 1


# --- the window feeding it ----------------------------------------------------------------


def test_the_window_keeps_each_scored_row_under_its_id() -> None:
    w = window()
    w.configure_labels(LabelsSpec(delay_seconds=600))
    feed(w, v1_pair("one", [[1, 2]], [[0.2, 0.8]]))
    feed(w, v1_pair("batch", [[1, 2], [3, 4]], [[0.6, 0.4], [0.1, 0.9]]))
    feed(w, v1_pair("plain", [[5, 6]], [1]))  # no probabilities: nothing to estimate
    out = w.add_labels(LabelBatch(("batch:1", "one", "plain"), ("1", "1", "0")), T0)
    assert out is not None
    assert (out.matched, out.unknown_ids) == (2, 1)
    found = w.labelled(T0)
    assert found is not None
    proba, labels = found
    np.testing.assert_allclose(proba, [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    assert labels == ["1", None, "1"]
    assert w.label_counters() == {
        "received": 3,
        "matched": 2,
        "unknownIds": 1,
        "duplicates": 0,
        "late": 0,
        "expired": 0,
        "awaiting": 1,
    }


def test_a_window_without_labels_takes_none() -> None:
    w = window()
    feed(w, v1_pair("one", [[1, 2]], [[0.2, 0.8]]))
    assert w.add_labels(LabelBatch(("one",), ("1",)), T0) is None
    assert w.labelled(T0) is None
    assert not w.takes_labels


def test_waiting_predictions_count_against_the_byte_share() -> None:
    w = window(max_samples=100000)
    w.configure_labels(LabelsSpec(delay_seconds=600, max_predictions=100000))
    w.set_byte_limit(200_000)
    for i in range(2000):
        feed(w, v1_pair(f"request-{i:06d}", [[1, 2]], [[0.2, 0.8]]))
        assert w.nbytes() <= 200_000
    found = w.labelled(T0)
    assert found is not None
    assert 0 < found[0].shape[0] < 2000  # the oldest predictions gave way
    assert len(w) > 0  # and so did rows, not only one or the other
    # The newest still joins; the oldest gave way: dropped and counted (as unknown: under
    # byte pressure the ids that left are the first memory to go).
    out = w.add_labels(LabelBatch(("request-001999", "request-000000"), ("1", "1")), T0)
    assert out is not None
    assert (out.matched, out.late + out.unknown_ids) == (1, 1)


def test_the_store_turns_labels_on_and_off_with_the_spec() -> None:
    store = PayloadStore()
    spec = payload_spec(labels={"labelDelay": "10m"})
    w = store.register("ml", "perf", spec, "t" * 43)
    assert w is not None
    assert w.takes_labels
    store.register("ml", "perf", payload_spec(), "t" * 43)
    assert not w.takes_labels


# --- the spec -----------------------------------------------------------------------------


def payload_spec(**performance: Any) -> MonitorSpec:
    return parse_spec(
        {
            "target": {"name": "m", "kind": "InferenceService"},
            "reference": {"inline": REFERENCE},
            "features": [{"name": "x", "type": "numerical"}],
            "data": {"payloadLog": {"minSamples": 50, "windowSeconds": 600}},
            "performance": {"target": "y", "probabilities": ["p0", "p1"], **performance},
        }
    )


def test_labels_defaults_and_settings() -> None:
    perf = payload_spec(labels={}).performance
    assert perf is not None
    assert perf.labels == LabelsSpec()
    assert perf.labels.delay_seconds == 86400
    perf = payload_spec(labels={"labelDelay": "7d", "maxPredictions": 5000}).performance
    assert perf is not None
    assert perf.labels == LabelsSpec("http", 7 * 86400, 5000)


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ({"source": "kafka"}, "labels.source"),
        ({"labelDelay": "30s"}, "between 1m and 30d"),
        ({"labelDelay": "31d"}, "between 1m and 30d"),
        ({"labelDelay": "soon"}, "not a duration"),
        ({"maxPredictions": 0}, "maxPredictions"),
    ],
)
def test_bad_label_settings_are_refused(labels: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError, match=words):
        payload_spec(labels=labels)


def test_labels_need_the_payload_log() -> None:
    doc = {
        "target": {
            "name": "m",
            "kind": "External",
            "endpoint": {"url": "http://m.test", "protocol": "v2"},
        },
        "reference": {"inline": REFERENCE},
        "data": {"probe": {}},
        "performance": {"target": "y", "probabilities": ["p0", "p1"], "labels": {}},
    }
    with pytest.raises(SpecError, match=r"needs spec\.data\.payloadLog"):
        parse_spec(doc)


# --- a run --------------------------------------------------------------------------------


def _log(store: PayloadStore, xs: np.ndarray, shrink: float = 1.0) -> list[str]:
    """Log one-row requests scored s = 0.5 + shrink (x - 0.5); return their ids."""
    window = store.window("ml", "perf")
    assert window is not None
    ids = []
    for i, x in enumerate(xs.tolist()):
        s = 0.5 + shrink * (x - 0.5)
        ids.append(f"req-{i}")
        for kind, body in (
            ("request", {"instances": [[x]]}),
            ("response", {"predictions": [[1 - s, s]]}),
        ):
            headers = {
                "Content-Type": "application/json",
                "Ce-Id": ids[-1],
                "Ce-Specversion": "1.0",
                "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
                "Ce-Source": "http://localhost:9081/m",
                "Ce-Inferenceservicename": "m",
                "Ce-Namespace": "ml",
            }
            window.add(parse_event(headers, json.dumps(body).encode()), NOW.timestamp())
    return ids


def _run(store: PayloadStore, spec: MonitorSpec) -> dict[str, Any]:
    inline = InlineRunner(replace(runner(Model()).clients, payloads=store))
    perf = asyncio.run(inline.run("ml", "perf", spec, {})).performance
    assert perf is not None
    return dict(perf)


def test_estimated_before_the_labels_realized_after_and_they_agree() -> None:
    store = PayloadStore()
    spec = payload_spec(labels={"labelDelay": "1h"}, minRows=100)
    store.register("ml", "perf", spec, "t" * 43)
    rng = np.random.default_rng(11)
    xs = rng.random(600)
    ids = _log(store, xs)
    before = _run(store, spec)
    assert before["basis"] == "estimated"
    assert before["labelledRows"] == 0
    assert "realized" not in before
    assert before["labels"]["awaiting"] == 600
    y = (rng.random(600) < xs).astype(int)  # the calibrated truth: P(y=1 | x) = x
    window = store.window("ml", "perf")
    assert window is not None
    window.add_labels(LabelBatch(tuple(ids), tuple(str(v) for v in y)), NOW.timestamp())
    after = _run(store, spec)
    assert after["basis"] == "realized"
    assert after["labelledRows"] == 600
    est, real = after["estimated"]["accuracy"], after["realized"]["accuracy"]
    assert est["lower"] <= real["value"] <= est["upper"], (est, real)
    assert after["conceptDrift"] is False
    assert after["labels"]["matched"] == 600


def test_labels_that_contradict_the_scores_are_concept_drift() -> None:
    store = PayloadStore()
    spec = payload_spec(labels={"labelDelay": "1h"}, minRows=100)
    store.register("ml", "perf", spec, "t" * 43)
    rng = np.random.default_rng(12)
    xs = rng.random(400)
    ids = _log(store, xs)
    y = (rng.random(400) >= xs).astype(int)  # P(y | x) flipped: the scores mean the opposite
    window = store.window("ml", "perf")
    assert window is not None
    window.add_labels(LabelBatch(tuple(ids), tuple(str(v) for v in y)), NOW.timestamp())
    perf = _run(store, spec)
    assert perf["conceptDrift"] is True
    assert "accuracy" in perf["conceptDriftMetrics"]


def test_unknown_and_garbage_labels_change_nothing() -> None:
    store = PayloadStore()
    spec = payload_spec(labels={"labelDelay": "1h"}, minRows=100)
    store.register("ml", "perf", spec, "t" * 43)
    _log(store, np.random.default_rng(13).random(300))
    before = _run(store, spec)
    window = store.window("ml", "perf")
    assert window is not None
    window.add_labels(LabelBatch(("nope", "req-x"), ("1", "banana")), NOW.timestamp())
    after = _run(store, spec)
    assert after["labelledRows"] == 0
    assert after["estimated"] == before["estimated"]
    assert after["labels"]["unknownIds"] == 2


def test_no_served_prediction_yet_is_insufficient_with_the_counters() -> None:
    store = PayloadStore()
    spec = payload_spec(labels={})
    store.register("ml", "perf", spec, "t" * 43)
    perf = _run(store, spec)
    assert perf["status"] == "insufficient_data"
    assert "waits for labels" in perf["message"]
    assert perf["labels"]["received"] == 0


# --- the configMap feed -------------------------------------------------------------------


def test_a_label_csv_reads_id_and_label_by_header() -> None:
    batch = parse_label_csv("label,id,note\n1,req-1,x\n0, req-2 ,y\n\n")
    assert batch == LabelBatch(("req-1", "req-2"), ("1", "0"))
    assert parse_label_csv("") == LabelBatch((), ())
    with pytest.raises(MalformedLabelsError, match="header"):
        parse_label_csv("request,truth\n1,0\n")
    with pytest.raises(MalformedLabelsError, match="line 2"):
        parse_label_csv("id,label\nonly-an-id\n")


def test_a_config_map_feed_needs_its_ref_and_only_then() -> None:
    ref = {"name": "fraud-labels", "key": "labels.csv"}
    perf = payload_spec(labels={"source": "configMap", "configMapRef": ref}).performance
    assert perf is not None
    assert perf.labels is not None
    assert (perf.labels.config_map_name, perf.labels.config_map_key) == (
        "fraud-labels",
        "labels.csv",
    )
    with pytest.raises(SpecError, match="configMapRef"):
        payload_spec(labels={"source": "configMap"})
    with pytest.raises(SpecError, match="configMapRef"):
        payload_spec(labels={"configMapRef": ref})  # source http
    with pytest.raises(SpecError, match=r"configMapRef\.name"):
        payload_spec(labels={"source": "configMap", "configMapRef": {**ref, "name": "../x"}})


def _config_map_run(store: PayloadStore, spec: MonitorSpec, objects: Objects) -> dict[str, Any]:
    clients = replace(runner(Model()).clients, payloads=store, lookup=objects)
    perf = asyncio.run(InlineRunner(clients).run("ml", "perf", spec, {})).performance
    assert perf is not None
    return dict(perf)


def test_a_config_map_feed_is_joined_once_per_version() -> None:
    store = PayloadStore()
    ref = {"name": "perf-labels", "key": "labels.csv"}
    spec = payload_spec(labels={"source": "configMap", "configMapRef": ref}, minRows=100)
    store.register("ml", "perf", spec, "t" * 43)
    rng = np.random.default_rng(14)
    xs = rng.random(300)
    ids = _log(store, xs)
    y = (rng.random(300) < xs).astype(int)
    objects = Objects()
    perf = _config_map_run(store, spec, objects)
    assert (
        perf["labels"]["message"]
        == "ConfigMap ml/perf-labels key labels.csv: the ConfigMap does not exist"
    )
    assert perf["basis"] == "estimated"  # the estimate goes on
    csv_text = "id,label\n" + "".join(f"{i},{v}\n" for i, v in zip(ids, y, strict=True))
    objects.items[("ConfigMap", "perf-labels")] = {
        "metadata": {"resourceVersion": "7"},
        "data": {"labels.csv": csv_text},
    }
    first = _config_map_run(store, spec, objects)
    again = _config_map_run(store, spec, objects)
    assert first["basis"] == "realized"
    assert first["labelledRows"] == 300
    assert "message" not in first["labels"]
    assert again["labels"]["received"] == 300  # the same version is not joined twice
    objects.items[("ConfigMap", "perf-labels")]["metadata"]["resourceVersion"] = "8"
    third = _config_map_run(store, spec, objects)
    assert third["labels"]["duplicates"] == 300  # a new version is joined whole again


def test_a_config_map_feed_that_cannot_be_read_is_a_note() -> None:
    store = PayloadStore()
    ref = {"name": "perf-labels", "key": "labels.csv"}
    spec = payload_spec(labels={"source": "configMap", "configMapRef": ref}, minRows=100)
    store.register("ml", "perf", spec, "t" * 43)
    _log(store, np.random.default_rng(15).random(200))
    objects = Objects(
        {
            ("ConfigMap", "perf-labels"): {
                "metadata": {"resourceVersion": "1"},
                "data": {"labels.csv": "who,what\n1,2\n"},
            }
        }
    )
    perf = _config_map_run(store, spec, objects)
    assert "header has no 'id' and 'label'" in perf["labels"]["message"]
    assert perf["status"] == "ok"
    assert perf["labels"]["received"] == 0


def test_status_performance_is_replaced_so_a_stale_key_goes() -> None:
    """status is written as a merge patch: keys of an earlier run (a feed's message,
    breached metrics) are sent as null, not left behind."""
    old = {
        "performance": {
            "status": "degraded",
            "breached": ["accuracy"],
            "labels": {"message": "x", "received": 0},
        }
    }
    new = {"status": "ok", "rows": 10, "labels": {"received": 3}}
    report = Report(NOW, 0.1, "inline", 10, DriftSummary("disabled"), performance=new)
    patch = decide(report, old, generation=1, now=NOW).status_patch["performance"]
    assert patch["breached"] is None
    assert patch["labels"] == {"message": None, "received": 3}
    assert patch["status"] == "ok"
