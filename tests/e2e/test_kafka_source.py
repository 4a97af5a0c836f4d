"""Payload logs from a real Kafka broker: the window survives an operator SIGKILL.

The broker is Apache Kafka in KRaft mode on the local JVM (tests/kafka_broker.py, the
session's ``kafka`` fixture). The test's producer (kafka-python) stands in for KServe's
logger behind Knative's KafkaSink: one binary-mode CloudEvent per record, attributes as
``ce_`` headers, request and response with the same id, as the CloudEvents Kafka binding
writes them. The operator's consumer, its window, the run and the verdict are the real
thing.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from typing import Any

import numpy as np
import pytest

from tests.cluster.kube import wait_for
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_runs import IRIS, condition, monitor, setup, wait_status
from tests.kafka_broker import KafkaBroker

kafka_python = pytest.importorskip("kafka")


def _headers(namespace: str, kind: str, event_id: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_type", f"org.kubeflow.serving.inference.{kind}".encode()),
        ("ce_source", b"http://localhost:9081/"),
        ("ce_namespace", namespace.encode()),
        ("ce_component", b"predictor"),
        ("ce_endpoint", b"default"),
        ("content-type", b"application/json"),
    ]


def _produce(producer: Any, topic: str, namespace: str, batches: list[list[list[float]]]) -> None:
    for batch in batches:
        event_id = str(uuid.uuid4())
        predictions = [0 if r[2] < 2.5 else 1 if r[2] < 4.9 else 2 for r in batch]
        halves = (("request", {"instances": batch}), ("response", {"predictions": predictions}))
        for kind, body in halves:
            producer.send(
                topic,
                key=event_id.encode(),
                value=json.dumps(body).encode(),
                headers=_headers(namespace, kind, event_id),
            )
    producer.flush(timeout=30)


def _shifted_batches(start: int, stop: int, seed: int) -> list[list[list[float]]]:
    """Requests of 5 iris rows each, sepal_width moved by +1.5 cm."""
    rng = np.random.default_rng(seed)
    rows = [[float(v) for v in line.split(",")[:4]] for line in IRIS.read_text().splitlines()[1:]]
    return [
        [[r[0], r[1] + 1.5 + rng.normal(0, 0.05), r[2], r[3]] for r in rows[i : i + 5]]
        for i in range(start, stop, 5)
    ]


def _metric(port: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_kafka_window_survives_a_restart(
    operator_process: OperatorProcess, namespace: str, kafka: KafkaBroker
) -> None:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    cluster = operator_process.cluster
    topic = f"payload-{namespace}"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=5)
    setup(cluster, namespace)
    doc = monitor("kafka-logs", "http://127.0.0.1:9", "iris", drift={"driftShare": 0.2})
    doc["spec"]["data"] = {
        "payloadLog": {
            "window": "10m",
            "minSamples": 20,
            "kafka": {"bootstrapServers": [kafka.bootstrap], "topic": topic},
        }
    }
    cluster.apply(doc, "-n", namespace)
    # An attack on the fence: the metadata service as a broker. Refused, and said so.
    hostile = monitor("kafka-metadata", "http://127.0.0.1:9", "iris")
    hostile["spec"]["data"] = {
        "payloadLog": {
            "minSamples": 1,
            "kafka": {"bootstrapServers": ["169.254.169.254:9092"], "topic": topic},
        }
    }
    cluster.apply(hostile, "-n", namespace)

    # Phase 1: 75 rows through the topic reach the window and the run.
    _produce(producer, topic, namespace, _shifted_batches(0, 75, seed=1))
    wait_status(
        cluster,
        namespace,
        "kafka-logs",
        lambda s: (s.get("lastRun") or {}).get("samples") == 75,
        "the first 75 rows in a run",
    )

    # SIGKILL the operator; 75 more rows are produced while none runs.
    operator_process.kill()
    _produce(producer, topic, namespace, _shifted_batches(75, 150, seed=2))
    restarted = time.monotonic()
    operator_process.start()
    st = wait_status(
        cluster,
        namespace,
        "kafka-logs",
        lambda s: (s.get("lastRun") or {}).get("samples") == 150 and s.get("phase") == "Drifted",
        "all 150 rows after the restart, Drifted",
    )
    rebuilt = time.monotonic() - restarted
    drifted = {f["name"] for f in st["drift"]["features"] if f["drifted"]}
    assert drifted == {"sepal_width"}, st["drift"]

    # Each event exactly once: the replay added every record of the window once.
    port = operator_process.args[operator_process.args.index("--metrics-port") + 1]
    labels = {"namespace": namespace, "monitor": "kafka-logs"}
    assert _metric(port, "modelmonitor_payload_events_total", result="received", **labels) == 60
    assert _metric(port, "modelmonitor_payload_events_total", result="paired", **labels) == 30
    assert _metric(port, "modelmonitor_payload_events_total", result="duplicates", **labels) == 0
    records = "modelmonitor_payload_kafka_records_total"
    assert _metric(port, records, result="read", **labels) == 60
    assert _metric(port, records, result="skipped", **labels) == 0
    assert _metric(port, records, result="rewinds", **labels) == 2  # both partitions
    first = st["lastRun"]["time"]
    st = wait_status(
        cluster,
        namespace,
        "kafka-logs",
        lambda s: (s.get("lastRun") or {}).get("time") != first,
        "one more run",
    )
    assert st["lastRun"]["samples"] == 150

    # Throughput: 1,000 more calls (2,000 events) of one row each, timed until all are in.
    rng = np.random.default_rng(3)
    burst = [[[5.8, 3.0 + 1.5 + float(rng.normal(0, 0.3)), 4.3, 1.3]] for _ in range(1000)]
    started = time.monotonic()
    _produce(producer, topic, namespace, burst)
    wait_for(
        lambda: (
            _metric(port, "modelmonitor_payload_events_total", result="received", **labels) >= 2060
        ),
        timeout=60,
        interval=0.2,
        what="2,000 events consumed",
    )
    rate = 2000 / (time.monotonic() - started)
    producer.close()
    assert _metric(port, "modelmonitor_payload_events_total", result="duplicates", **labels) == 0

    refused = wait_status(
        cluster,
        namespace,
        "kafka-metadata",
        lambda s: "refused: link-local address" in condition(s, "DriftDetected").get("message", ""),
        "the metadata service refused as a broker",
    )
    assert refused.get("phase") != "Drifted"
    print(
        f"\nkafka: broker start {kafka.start_seconds:.1f} s, window rebuilt (restart to "
        f"Drifted with all 150 rows) {rebuilt:.1f} s, consumed {rate:.0f} events/s"
    )


SASL_USER = {"username": {"name": "u", "key": "user"}, "password": {"name": "u", "key": "password"}}
BAD_KAFKA = [
    ("port-zero", {"bootstrapServers": ["kafka:0"], "topic": "t"}, "bootstrapServers"),
    ("port-too-big", {"bootstrapServers": ["kafka:70000"], "topic": "t"}, "bootstrapServers"),
    ("no-port", {"bootstrapServers": ["kafka"], "topic": "t"}, "bootstrapServers"),
    ("upper-case-host", {"bootstrapServers": ["Kafka:9092"], "topic": "t"}, "bootstrapServers"),
    ("no-servers", {"bootstrapServers": [], "topic": "t"}, "bootstrapServers"),
    ("topic-dotdot", {"bootstrapServers": ["kafka:9092"], "topic": ".."}, "topic"),
    ("topic-slash", {"bootstrapServers": ["kafka:9092"], "topic": "a/b"}, "topic"),
    (
        "operators-group",
        {"bootstrapServers": ["kafka:9092"], "topic": "t", "consumerGroup": "modelmonitor.a.b"},
        "consumerGroup",
    ),
    (
        "sasl-without-tls",
        {
            "bootstrapServers": ["kafka:9092"],
            "topic": "t",
            "sasl": {"mechanism": "PLAIN", **SASL_USER},
        },
        "sasl",
    ),
    (
        "sasl-mechanism",
        {
            "bootstrapServers": ["kafka:9092"],
            "topic": "t",
            "tlsConfig": {},
            "sasl": {"mechanism": "GSSAPI", **SASL_USER},
        },
        "sasl.mechanism",
    ),
    (
        "tls-skip-verify",
        {
            "bootstrapServers": ["kafka:9092"],
            "topic": "t",
            "tlsConfig": {"insecureSkipVerify": True},
        },
        "tlsConfig",
    ),
]


@pytest.mark.parametrize(("case", "kafka_spec", "field"), BAD_KAFKA, ids=[c[0] for c in BAD_KAFKA])
def test_bad_kafka_fields_are_refused_by_the_api_server(
    crds: Any, namespace: str, case: str, kafka_spec: dict[str, Any], field: str
) -> None:
    from tests.e2e.test_crd import assert_refused

    spec = {
        "target": {"kind": "Deployment", "name": "m"},
        "reference": {"configMapRef": {"name": "r", "key": "k"}},
        "data": {"payloadLog": {"kafka": kafka_spec}},
    }
    assert_refused(crds, namespace, case, spec, f"spec.data.payloadLog.kafka.{field}")
