"""Payload logs from Kafka: the spec, the records' decoding, the fence on every broker
connection, and the feed's offsets (each record applied once, the window rebuilt by
timestamp).

The feed's tests drive :class:`KafkaFeed` with a small consumer of ours that has
kafka-python's polling interface (poll, seek, offsets_for_times, end_offsets, commit):
the real broker is exercised by tests/e2e/test_kafka_source.py.
"""

from __future__ import annotations

import json
import re
import socket
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmonitor.adapters import kafka as kafka_client
from modelmonitor.adapters.outbound import FenceError, Outbound, OutboundRefused
from modelmonitor.core.codecs.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, parse_events
from modelmonitor.core.kafka import (
    default_group,
    group_problem,
    parse_bootstrap,
    record_message,
    topic_problem,
)
from modelmonitor.core.outbound import OutboundPolicy
from modelmonitor.core.spec import SpecError, parse_spec
from modelmonitor.sources.payload.kafka_feed import KafkaFeed, KafkaFeeds
from modelmonitor.sources.payload.store import PayloadStore

CRD = Path(__file__).resolve().parents[3] / "crds" / "modelmonitor.io_modelmonitors.yaml"
Record = namedtuple("Record", "topic partition offset timestamp value headers")
TP = namedtuple("TP", "topic partition")
NOW = 1_800_000_000.0


def _spec(kafka: dict[str, Any], **payload: Any) -> Any:
    return parse_spec(
        {
            "target": {"kind": "Deployment", "name": "m"},
            "reference": {"inline": [{"a": 1.0}]},
            "data": {"payloadLog": {"minSamples": 1, **payload, "kafka": kafka}},
        }
    )


# -- the spec ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kafka.ml.svc:9092", ("kafka.ml.svc", 9092)),
        ("10.0.0.7:9093", ("10.0.0.7", 9093)),
        ("[fd00::1]:9092", ("fd00::1", 9092)),
    ],
)
def test_bootstrap_addresses_parse(text: str, expected: tuple[str, int]) -> None:
    assert parse_bootstrap(text) == expected


@pytest.mark.parametrize(
    "text",
    ["kafka", "kafka:0", "kafka:65536", "Kafka:9092", "kafka:90x", ":9092", "a b:1", "", 7],
)
def test_bad_bootstrap_addresses_are_refused(text: object) -> None:
    assert isinstance(parse_bootstrap(text), str)


def _crd_kafka() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    payload = schema["properties"]["spec"]["properties"]["data"]["properties"]["payloadLog"]
    kafka: dict[str, Any] = payload["properties"]["kafka"]
    return kafka


@pytest.mark.parametrize(
    "text",
    ["kafka.ml.svc:9092", "10.0.0.7:9093", "[fd00::1]:9092", "kafka", "Kafka:9092", ":9092"],
)
def test_crd_pattern_agrees_with_the_parser(text: str) -> None:
    """The API server and the parser accept the same addresses (ports are range-checked
    by a CEL rule in the CRD and by the parser)."""
    pattern = _crd_kafka()["properties"]["bootstrapServers"]["items"]["pattern"]
    assert bool(re.fullmatch(pattern, text)) == (not isinstance(parse_bootstrap(text), str))


def test_crd_and_parser_refuse_the_operators_own_groups() -> None:
    rule = _crd_kafka()["properties"]["consumerGroup"]["x-kubernetes-validations"][0]["rule"]
    assert "modelmonitor." in rule
    assert group_problem(default_group("team-b", "fraud")) is not None
    assert group_problem("team-a-fraud") is None


def test_spec_reads_kafka_and_defaults_the_group() -> None:
    spec = _spec({"bootstrapServers": ["kafka.ml:9092", "kafka2.ml:9092"], "topic": "iris-logs"})
    kafka = spec.payload_log.kafka
    assert kafka.bootstrap_servers == (("kafka.ml", 9092), ("kafka2.ml", 9092))
    assert kafka.topic == "iris-logs"
    assert kafka.consumer_group is None
    assert default_group("ml", "iris") == "modelmonitor.ml.iris"


@pytest.mark.parametrize(
    ("kafka", "field"),
    [
        ({"topic": "t"}, "bootstrapServers"),
        ({"bootstrapServers": [], "topic": "t"}, "bootstrapServers"),
        ({"bootstrapServers": ["k:1"] * 9, "topic": "t"}, "bootstrapServers"),
        ({"bootstrapServers": ["k:99999"], "topic": "t"}, "bootstrapServers[0]"),
        ({"bootstrapServers": ["k:9092"]}, "topic"),
        ({"bootstrapServers": ["k:9092"], "topic": ".."}, "topic"),
        ({"bootstrapServers": ["k:9092"], "topic": "a/b"}, "topic"),
        (
            {"bootstrapServers": ["k:9092"], "topic": "t", "consumerGroup": "modelmonitor.x.y"},
            "consumerGroup",
        ),
    ],
)
def test_spec_refuses_bad_kafka_fields(kafka: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        _spec(kafka)
    assert f"spec.data.payloadLog.kafka.{field}" in str(err.value)


def test_topic_names() -> None:
    assert topic_problem("iris.logs_v2-x") is None
    assert topic_problem("x" * 250) is not None


# -- records to CloudEvents ---------------------------------------------------------------
def _binary(event_id: str, kind: str, body: Any) -> tuple[list[tuple[str, bytes | None]], bytes]:
    """A record as Knative's KafkaSink writes a binary-mode event (ce_ headers)."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_type", (REQUEST_TYPE if kind == "request" else RESPONSE_TYPE).encode()),
        ("ce_source", b"http://localhost:9081/iris"),
        ("ce_inferenceservicename", b"iris"),
        ("ce_namespace", b"ml"),
        ("content-type", b"application/json"),
    ]
    return headers, json.dumps(body).encode()


def test_binary_mode_record_reads_as_the_http_event() -> None:
    headers, body = record_message(*_binary("e1", "request", {"instances": [[1.0, 2.0]]}))
    (event,) = parse_events(headers, body)
    assert (event.id, event.kind, event.namespace, event.service) == ("e1", "request", "ml", "iris")
    assert event.n_rows == 1


def test_structured_record_without_headers_is_recognised() -> None:
    doc = {
        "specversion": "1.0",
        "id": "e2",
        "type": RESPONSE_TYPE,
        "source": "s",
        "datacontenttype": "application/json",
        "data": {"predictions": [1, 0]},
    }
    headers, body = record_message([], json.dumps(doc).encode())
    (event,) = parse_events(headers, body)
    assert (event.id, event.kind, event.n_rows) == ("e2", "response", 2)


def test_hostile_headers_are_dropped_not_decoded() -> None:
    headers, _ = record_message(
        [("ce_id", b"\xff\xfe"), ("ce_source", b"x" * 5000), ("ce_type", None)], b"{}"
    )
    assert headers == {}


# -- the fence on every connection --------------------------------------------------------
def test_fenced_socket_refuses_metadata_service_and_loopback() -> None:
    """An attack through an advertised listener: the broker says it lives at
    169.254.169.254:80; the connection is refused before a byte is sent."""
    pytest.importorskip("kafka")
    from kafka.net.inet import KafkaNetSocket

    fence = Outbound(OutboundPolicy())
    kafka_client._register_factory()
    with kafka_client._fences_lock:
        kafka_client._fences["t1"] = fence
    factory = KafkaNetSocket(f"{kafka_client.FENCE_SCHEME}://t1")
    for address in ("169.254.169.254", "127.0.0.1"):
        with socket.socket() as sock, pytest.raises(OutboundRefused):
            factory.connect_ex(sock, (address, 80))
    assert fence.blocked == {"link_local": 1, "loopback": 1}
    unknown = KafkaNetSocket(f"{kafka_client.FENCE_SCHEME}://nobody")
    with socket.socket() as sock, pytest.raises(OSError, match="no outbound fence"):
        unknown.connect_ex(sock, ("192.0.2.1", 9092))


def test_a_refused_bootstrap_names_the_refusal() -> None:
    pytest.importorskip("kafka")
    with pytest.raises(FenceError, match="refused: link-local address"):
        kafka_client.open_consumer(
            Outbound(OutboundPolicy()),
            [("169.254.169.254", 9092)],
            "g",
            "c",
            bootstrap_timeout_ms=1500,
        )


# -- the feed's offsets -------------------------------------------------------------------
class _Consumer:
    """kafka-python's polling interface over lists of records, per partition."""

    def __init__(self, log: dict[Any, list[Record]]) -> None:
        self.log = log
        self.position: dict[Any, int] = dict.fromkeys(log, 0)
        self.committed: dict[Any, int] = {}
        self.sought: dict[Any, int] = {}

    def poll(self, timeout_ms: int = 0) -> dict[Any, list[Record]]:
        out = {}
        for tp, records in self.log.items():
            batch = [r for r in records if r.offset >= self.position[tp]][:3]
            if batch:
                out[tp] = batch
                self.position[tp] = batch[-1].offset + 1
        return out

    def seek(self, tp: Any, offset: int) -> None:
        self.position[tp] = offset
        self.sought[tp] = offset

    def offsets_for_times(self, times: dict[Any, int], timeout_ms: int = 0) -> dict[Any, Any]:
        hit = namedtuple("Hit", "offset timestamp")
        out: dict[Any, Any] = {}
        for tp, ms in times.items():
            found = [r for r in self.log[tp] if r.timestamp >= ms]
            out[tp] = hit(found[0].offset, found[0].timestamp) if found else None
        return out

    def end_offsets(self, tps: list[Any], timeout_ms: int = 0) -> dict[Any, int]:
        return {tp: len(self.log[tp]) for tp in tps}

    def commit(self, offsets: dict[Any, Any]) -> None:
        self.committed.update({tp: o.offset for tp, o in offsets.items()})


def _records(tp: Any, times: list[float]) -> list[Record]:
    out = []
    for i, t in enumerate(times):
        eid = f"{tp.partition}-{i // 2}"
        kind = "request" if i % 2 == 0 else "response"
        body = {"instances": [[float(i), 1.0]]} if kind == "request" else {"predictions": [1]}
        headers, value = _binary(eid, kind, body)
        out.append(Record(tp.topic, tp.partition, i, int(t * 1000), value, headers))
    return out


def _feed(store: PayloadStore, window_seconds: int = 600) -> KafkaFeed:
    spec = _spec({"bootstrapServers": ["k:9092"], "topic": "logs"}, window=f"{window_seconds}s")
    store.register("ml", "m", spec, "token")
    return KafkaFeed(
        "ml",
        "m",
        spec.payload_log.kafka,
        store,
        Outbound(),
        max_value_bytes=1 << 20,
        clock=lambda: NOW,
    )


def test_feed_rewinds_to_the_window_and_applies_each_record_once() -> None:
    store = PayloadStore()
    feed = _feed(store, window_seconds=600)
    tp = TP("logs", 0)
    # 4 pairs older than the window (and its pairing margin), then 10 pairs inside it.
    old = [NOW - 3600 + i for i in range(8)]
    recent = [NOW - 300 + i for i in range(20)]
    consumer = _Consumer({tp: _records(tp, old + recent)})
    consumer.position[tp] = 12  # the committed offset: 2 pairs of the window read before
    feed.assigned([tp])
    for _ in range(20):
        feed._poll_once(consumer)
    window = store.window("ml", "m")
    assert consumer.sought == {tp: 8}  # the first record of the window
    assert len(window) == 10
    assert window.counters.duplicates == 0
    assert consumer.committed == {tp: 28}
    # A rebalance gives the partition back and re-delivers from an older commit: the
    # records already in the window are skipped, not added again.
    feed.revoked([tp])
    feed.assigned([tp])
    consumer.position[tp] = 10
    for _ in range(10):
        feed._poll_once(consumer)
    assert len(window) == 10
    assert feed.stats.skipped == 18


def test_rows_are_timed_by_the_record_so_old_ones_age_out() -> None:
    store = PayloadStore()
    feed = _feed(store, window_seconds=600)
    tp = TP("logs", 0)
    consumer = _Consumer({tp: _records(tp, [NOW - 590, NOW - 590, NOW - 10, NOW - 10])})
    feed.assigned([tp])
    for _ in range(3):
        feed._poll_once(consumer)
    window = store.window("ml", "m")
    assert window.status(NOW).rows == 2
    assert window.status(NOW + 30).rows == 1  # the first pair is older than 600 s now


def test_oversized_and_foreign_records_do_not_reach_the_window() -> None:
    store = PayloadStore()
    feed = _feed(store)
    feed.max_value_bytes = 50
    tp = TP("logs", 0)
    big = Record("logs", 0, 0, int(NOW * 1000), b"{" + b" " * 100 + b"}", [])
    consumer = _Consumer({tp: [big]})
    feed.assigned([tp])
    feed._poll_once(consumer)
    feed._poll_once(consumer)
    assert feed.stats.too_large == 1
    assert store.window("ml", "m").counters.malformed == 1


def test_events_of_another_namespace_are_refused() -> None:
    """A topic shared by two teams: team ml's monitor never takes team other's events."""
    store = PayloadStore()
    feed = _feed(store)
    feed.namespace = "other"
    spec = _spec({"bootstrapServers": ["k:9092"], "topic": "logs"})
    store.register("other", "m", spec, "token")
    tp = TP("logs", 0)
    consumer = _Consumer({tp: _records(tp, [NOW - 5, NOW - 5])})
    feed.assigned([tp])
    feed._poll_once(consumer)
    feed._poll_once(consumer)
    assert len(store.window("other", "m")) == 0
    assert store.rejected == {"foreign_source": 2}


def test_feed_stops_with_the_run_loop_and_comes_back_with_it() -> None:
    """A replica whose run loops stop must not keep consuming: two
    consumers in one group would each see half of the topic."""
    pytest.importorskip("kafka")
    store = PayloadStore()
    spec = _spec({"bootstrapServers": ["127.0.0.1:1"], "topic": "logs"})
    store.register("ml", "m", spec, "token")
    feeds = KafkaFeeds(store, Outbound(OutboundPolicy()), max_value_bytes=1024)
    try:
        assert feeds.ensure("ml", "m", spec.payload_log.kafka) is None
        assert set(feeds.stats()) == {("ml", "m")}
        feeds.pause("ml", "m")
        assert feeds.stats() == {}
        feeds.resume("ml", "m")
        assert set(feeds.stats()) == {("ml", "m")}
        feeds.pause("ml", "m")
        feeds.ensure("ml", "m", None)  # the monitor is gone: nothing to resume
        feeds.resume("ml", "m")
        assert feeds.stats() == {}
    finally:
        feeds.stop_all()


def test_only_the_replica_holding_the_lease_consumes() -> None:
    """Every replica registers the monitor's feed, but a standby's consumer would take
    half the partitions into a window nobody runs: it starts only once this replica
    leads, and the run loop's follower pauses it when the Lease is lost."""
    pytest.importorskip("kafka")
    store = PayloadStore()
    spec = _spec({"bootstrapServers": ["127.0.0.1:1"], "topic": "logs"})
    store.register("ml", "m", spec, "token")
    leading = [False]
    feeds = KafkaFeeds(
        store, Outbound(OutboundPolicy()), max_value_bytes=1024, leading=lambda: leading[0]
    )
    try:
        assert feeds.ensure("ml", "m", spec.payload_log.kafka) is None
        assert feeds.stats() == {}  # a standby: registered, not consuming
        leading[0] = True
        feeds.resume("ml", "m")
        assert set(feeds.stats()) == {("ml", "m")}
        leading[0] = False
        feeds.pause("ml", "m")
        assert feeds.stats() == {}
    finally:
        feeds.stop_all()


def test_a_restarted_feed_rebuilds_the_window_instead_of_adding_to_it() -> None:
    """Pause and resume (or a changed kafka spec) start a new feed that rewinds: the
    window is emptied first, and its clock too, so replayed rows keep their own times."""
    store = PayloadStore()
    tp = TP("logs", 0)
    log = {tp: _records(tp, [NOW - 500, NOW - 500, NOW - 5, NOW - 5])}
    for _ in range(2):  # the first feed, then its successor after a pause
        feed = _feed(store)
        store.window("ml", "m").clear()  # what KafkaFeed.start does before its thread runs
        consumer = _Consumer(log)
        feed.assigned([tp])
        for _ in range(3):
            feed._poll_once(consumer)
        status = store.window("ml", "m").status(NOW)
        assert status.rows == 2
        assert status.oldest_age_seconds == pytest.approx(500)
