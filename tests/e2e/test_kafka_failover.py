"""Two operator replicas reading one Kafka topic: only the Lease holder consumes, and
after the holder's SIGKILL mid-stream the survivor's window holds every event once.

Everything is real: the control plane, the session's Kafka broker (KRaft, plaintext),
two ``modelmonitor run`` processes competing for the Lease in the test's namespace (as
in test_failover.py). The test's producer writes one call (a request and a response
CloudEvent, binary mode) every 25 ms throughout, the SIGKILL included. The standby must
not consume while it stands by (a second consumer in the group would take half the
partitions into a window nobody runs); once it leads it rebuilds the window from the
topic and then follows the stream.

Measured and printed (``kafka-failover:``): from the SIGKILL to the survivor leading, to
its first record read, and to its window holding every event produced before the kill.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_failover import leads, replica
from tests.e2e.test_kafka_source import _headers, _metric
from tests.e2e.test_runs import monitor, setup, wait_status
from tests.kafka_broker import KafkaBroker

pytest.importorskip("kafka")

CALL_EVERY = 0.025  # seconds between two calls of the stream
TAKEOVER_LIMIT_SECONDS = 15.0  # the Lease's 10 s duration and a retry


class Stream:
    """Calls of one iris row each, produced until stopped; counts what it produced."""

    def __init__(self, kafka: KafkaBroker, topic: str, namespace: str) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=2, acks="all")
        self.topic = topic
        self.namespace = namespace
        self.calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            event_id = str(uuid.uuid4())
            row = [5.8, 3.0 + (self.calls % 7) * 0.1, 4.3, 1.3]
            for kind, body in (
                ("request", {"instances": [row]}),
                ("response", {"predictions": [1]}),
            ):
                self.producer.send(
                    self.topic,
                    key=event_id.encode(),
                    value=json.dumps(body).encode(),
                    headers=_headers(self.namespace, kind, event_id),
                )
            self.calls += 1
            self._stop.wait(CALL_EVERY)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(10)
        self.producer.flush(timeout=30)
        self.producer.close()
        return self.calls


def _counter(op: OperatorProcess, namespace: str, name: str, metric: str, result: str) -> float:
    port = op.args[op.args.index("--metrics-port") + 1]
    return _metric(port, metric, result=result, namespace=namespace, monitor=name)


def _received(op: OperatorProcess, namespace: str) -> float:
    return _counter(op, namespace, "kafka-ha", "modelmonitor_payload_events_total", "received")


def _read(op: OperatorProcess, namespace: str) -> float:
    return _counter(op, namespace, "kafka-ha", "modelmonitor_payload_kafka_records_total", "read")


def _members(kafka: KafkaBroker, group: str) -> list[Any]:
    """The consumer group's members, as the broker's group coordinator knows them."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        described = admin.describe_groups([group])
    finally:
        admin.close()
    return list(described[group]["members"])


def test_only_the_leader_consumes_and_the_survivor_has_every_event_once(
    crds: KubeCluster,
    namespace: str,
    kafka: KafkaBroker,
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    cluster = crds
    topic = f"ha-{namespace}"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    setup(cluster, namespace)
    first = replica(cluster, tmp_path / "first.log", namespace)
    second = replica(cluster, tmp_path / "second.log", namespace)
    stream = Stream(kafka, topic, namespace)
    try:
        first.start()
        wait_for(lambda: leads(first) or not first.alive(), timeout=60, what="first leads")
        assert first.alive(), first.logs()[-3000:]
        second.start()
        wait_for(
            lambda: "standing by for lease" in second.logs() or not second.alive(),
            timeout=60,
            what="the second replica stands by",
        )
        doc = monitor("kafka-ha", "http://127.0.0.1:9", "iris")
        doc["spec"]["data"] = {
            "payloadLog": {
                "window": "10m",
                "minSamples": 1,
                "kafka": {"bootstrapServers": [kafka.bootstrap], "topic": topic},
            }
        }
        cluster.apply(doc, "-n", namespace)
        stream.start()
        wait_for(
            lambda: _received(first, namespace) >= 200,
            timeout=40,
            interval=0.2,
            what="the leader consumes",
        )
        # Only the Lease holder consumes: the group has one member, the standby read
        # nothing and its window is empty.
        assert len(_members(kafka, f"modelmonitor.{namespace}.kafka-ha")) == 1
        assert _read(second, namespace) == 0.0
        assert _received(second, namespace) == 0.0

        killed = time.monotonic()
        produced_at_kill = stream.calls
        first.kill()
        wait_for(lambda: leads(second), timeout=30, interval=0.1, what="the survivor leads")
        leading = time.monotonic() - killed
        wait_for(lambda: _read(second, namespace) > 0, timeout=30, interval=0.1, what="reads")
        reading = time.monotonic() - killed
        wait_for(
            lambda: _received(second, namespace) >= 2 * produced_at_kill,
            timeout=30,
            interval=0.1,
            what="the events produced before the kill are back in the window",
        )
        caught_up = time.monotonic() - killed
        time.sleep(2.0)  # the stream goes on past the takeover
        total = stream.stop()

        def complete(s: dict[str, Any]) -> bool:
            return (s.get("lastRun") or {}).get("samples") == total

        wait_status(cluster, namespace, "kafka-ha", complete, f"all {total} calls in one run")
        measured = {"leading": leading, "first_read": reading, "window_rebuilt": caught_up}
        print(
            "\nkafka-failover:",
            json.dumps({**{k: round(v, 2) for k, v in measured.items()}, "calls": total}),
        )
        for key, value in measured.items():
            record_property(f"kafka_failover_{key}_seconds", round(value, 2))

        # Every event once: each produced call paired once, none twice, none lost.
        port = second.args[second.args.index("--metrics-port") + 1]
        labels = {"namespace": namespace, "monitor": "kafka-ha"}
        events = "modelmonitor_payload_events_total"
        assert _metric(port, events, result="received", **labels) == 2 * total
        assert _metric(port, events, result="paired", **labels) == total
        assert _metric(port, events, result="duplicates", **labels) == 0
        assert leading < TAKEOVER_LIMIT_SECONDS, measured
    finally:
        if stream._thread.is_alive():
            stream.stop()
        first.kill()
        first.stop()
        second.stop()
