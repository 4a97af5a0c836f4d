"""Payload logs from a real Kafka broker over TLS and SASL.

One broker for the module (tests/kafka_broker.py) with a SASL_SSL listener: the server
certificate of a throwaway CA (tests/tls_certs.py), client certificates of that CA
required (mTLS), SCRAM users written into the KRaft metadata at format time. The
monitors' credentials are real Secrets in the test's namespace; the operator reads
them, hands them to kafka-python and consumes. The test's
producer writes through the broker's PLAINTEXT listener (it stands in for KServe's
logger behind Knative's KafkaSink, as in test_kafka_source.py).

Measured and printed (``kafka-secure:``): the broker's start with the SASL_SSL listener,
and the consumption rate of one burst read over mTLS+SCRAM and over plaintext (each
twice, in the order plaintext, TLS, TLS, plaintext, so that a warm-up favours neither).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_kafka_source import _metric, _produce, _shifted_batches
from tests.e2e.test_runs import condition, monitor, setup, wait_status
from tests.kafka_broker import KafkaBroker, SecureListener, reap_orphans
from tests.tls_certs import TestCA, make_ca

pytest.importorskip("kafka")

USER = "monitor"
PASSWORD = "scram-pw-5d0c8e1f"


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return make_ca()


@pytest.fixture(scope="module")
def secure_kafka(request: pytest.FixtureRequest, ca: TestCA) -> Iterator[KafkaBroker]:
    reap_orphans()
    listener = SecureListener(
        ca, scram_users={USER: PASSWORD}, plain_users={USER: PASSWORD}, client_auth="required"
    )
    broker = KafkaBroker("secure", listener)
    broker.start()
    try:
        yield broker
    finally:
        if request.session.testsfailed:
            broker.stop()  # keep .state/kafka/ for a look
        else:
            broker.destroy()


def _secret(name: str, **data: bytes | str) -> dict[str, Any]:
    encoded = {
        k.replace("_", "."): base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
        for k, v in data.items()
    }
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def _topic(kafka: KafkaBroker, topic: str, partitions: int = 2) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()


def _prepare(
    cluster: KubeCluster, namespace: str, kafka: KafkaBroker, ca: TestCA, prefix: str
) -> str:
    """The monitor's reference and Secrets (the CA, the SCRAM user with its password under
    ``password`` and a wrong one under ``wrong``), and a topic of two partitions."""
    topic = f"{prefix}-{namespace}"
    _topic(kafka, topic)
    setup(cluster, namespace)
    cluster.apply(
        [
            _secret("kafka-ca", ca_crt=ca.ca.cert),
            _secret("kafka-user", user=USER, password=PASSWORD, wrong="not-the-password"),
            {
                **_secret("kafka-client", tls_crt=ca.client.cert, tls_key=ca.client.key),
                "type": "kubernetes.io/tls",
            },
        ],
        "-n",
        namespace,
    )
    return topic


def _secure_monitor(
    name: str,
    kafka: KafkaBroker,
    topic: str,
    *,
    ca_secret: str,
    password_key: str,
    client_cert: bool = True,
    mechanism: str = "SCRAM-SHA-512",
) -> dict[str, Any]:
    doc = monitor(name, "http://127.0.0.1:9", "iris", drift={"driftShare": 0.2})
    doc["spec"]["data"] = {
        "payloadLog": {
            "window": "10m",
            "minSamples": 20,
            "kafka": {
                "bootstrapServers": [kafka.secure_bootstrap],
                "topic": topic,
                "tlsConfig": {
                    "ca": {"secretKeyRef": {"name": ca_secret, "key": "ca.crt"}},
                    **({"clientCertSecretRef": {"name": "kafka-client"}} if client_cert else {}),
                },
                "sasl": {
                    "mechanism": mechanism,
                    "username": {"name": "kafka-user", "key": "user"},
                    "password": {"name": "kafka-user", "key": password_key},
                },
            },
        }
    }
    return doc


def _degraded(status: dict[str, Any], words: str) -> bool:
    cond = condition(status, "Degraded")
    return (
        cond.get("status") == "True"
        and cond.get("reason") == "PayloadSourceUnavailable"
        and words in cond.get("message", "")
    )


def test_tls_and_scram_fill_the_window_and_bad_credentials_are_named(
    operator_process: OperatorProcess,
    namespace: str,
    secure_kafka: KafkaBroker,
    ca: TestCA,
) -> None:
    from kafka import KafkaProducer

    cluster: KubeCluster = operator_process.cluster
    topic = _prepare(cluster, namespace, secure_kafka, ca, "secure")
    cluster.apply(_secret("other-ca", ca_crt=make_ca("another CA").ca.cert), "-n", namespace)
    good = _secure_monitor(
        "kafka-scram", secure_kafka, topic, ca_secret="kafka-ca", password_key="password"
    )
    wrong = _secure_monitor(
        "kafka-wrong", secure_kafka, topic, ca_secret="kafka-ca", password_key="wrong"
    )
    other = _secure_monitor(
        "kafka-other-ca", secure_kafka, topic, ca_secret="other-ca", password_key="password"
    )
    no_cert = _secure_monitor(
        "kafka-no-cert",
        secure_kafka,
        topic,
        ca_secret="kafka-ca",
        password_key="password",
        client_cert=False,
    )
    plain = _secure_monitor(
        "kafka-plain-sasl",
        secure_kafka,
        topic,
        ca_secret="kafka-ca",
        password_key="password",
        mechanism="PLAIN",
    )
    for doc in (good, wrong, other, no_cert, plain):
        cluster.apply(doc, "-n", namespace)
    producer = KafkaProducer(bootstrap_servers=secure_kafka.bootstrap, linger_ms=5)
    _produce(producer, topic, namespace, _shifted_batches(0, 75, seed=1))
    producer.close()

    st = wait_status(
        cluster,
        namespace,
        "kafka-scram",
        lambda s: (s.get("lastRun") or {}).get("samples") == 75 and s.get("phase") == "Drifted",
        "75 rows read over TLS+SCRAM, Drifted",
    )
    assert condition(st, "Degraded").get("status") != "True", st["conditions"]
    wait_status(
        cluster,
        namespace,
        "kafka-plain-sasl",
        lambda s: (s.get("lastRun") or {}).get("samples") == 75,
        "75 rows read over TLS+PLAIN",
    )
    # A wrong password: the broker's refusal, in words, on the monitor; no verdict, no action.
    refused = wait_status(
        cluster,
        namespace,
        "kafka-wrong",
        lambda s: _degraded(s, "SASL authentication failed"),
        "the wrong password named",
    )
    assert refused.get("phase") == "Degraded", refused
    assert "not-the-password" not in json.dumps(refused)
    assert not refused.get("lastAction")
    # A CA that did not sign the broker's certificate: no connection, said so.
    untrusted = wait_status(
        cluster,
        namespace,
        "kafka-other-ca",
        lambda s: _degraded(s, "certificate is not trusted"),
        "the untrusted broker named",
    )
    assert untrusted.get("phase") == "Degraded", untrusted
    # mTLS: without the client certificate the broker refuses the connection.
    no_client_cert = wait_status(
        cluster,
        namespace,
        "kafka-no-cert",
        lambda s: _degraded(s, "BAD_CERTIFICATE"),
        "the missing client certificate named",
    )
    assert "clientCertSecretRef" in condition(no_client_cert, "Degraded")["message"]
    assert PASSWORD not in operator_process.logs()
    assert PASSWORD not in json.dumps(untrusted)


def _burst_rate(
    op: OperatorProcess,
    cluster: KubeCluster,
    namespace: str,
    name: str,
    doc: dict[str, Any],
    n: int,
) -> tuple[float, float]:
    """Apply ``doc`` on a topic already holding ``n`` events: (seconds to the first event,
    events per second from the first to the last)."""
    port = op.args[op.args.index("--metrics-port") + 1]
    labels = {"namespace": namespace, "monitor": name}
    applied = time.monotonic()
    cluster.apply(doc, "-n", namespace)

    def received() -> float:
        return _metric(port, "modelmonitor_payload_events_total", result="received", **labels)

    wait_for(lambda: received() > 0, timeout=40, interval=0.05, what=f"{name}: first event")
    first = time.monotonic()
    wait_for(lambda: received() >= n, timeout=40, interval=0.05, what=f"{name}: {n} events")
    return first - applied, n / (time.monotonic() - first)


def test_consumption_rate_over_tls_and_plaintext(
    operator_process: OperatorProcess,
    namespace: str,
    secure_kafka: KafkaBroker,
    ca: TestCA,
) -> None:
    from kafka import KafkaProducer

    cluster: KubeCluster = operator_process.cluster
    topic = _prepare(cluster, namespace, secure_kafka, ca, "burst")
    rng = np.random.default_rng(5)
    calls = 5000
    burst = [[[5.8, 3.0 + float(rng.normal(0, 0.3)), 4.3, 1.3]] for _ in range(calls)]
    producer = KafkaProducer(bootstrap_servers=secure_kafka.bootstrap, linger_ms=5)
    _produce(producer, topic, namespace, burst)
    producer.close()
    events = 2 * calls

    def plain(name: str) -> dict[str, Any]:
        doc = monitor(name, "http://127.0.0.1:9", "iris")
        doc["spec"]["data"] = {
            "payloadLog": {
                "window": "10m",
                "kafka": {"bootstrapServers": [secure_kafka.bootstrap], "topic": topic},
            }
        }
        return doc

    def tls(name: str) -> dict[str, Any]:
        return _secure_monitor(
            name, secure_kafka, topic, ca_secret="kafka-ca", password_key="password"
        )

    rates: dict[str, list[float]] = {"plaintext": [], "tls": []}
    starts: dict[str, list[float]] = {"plaintext": [], "tls": []}
    for i, (mode, make) in enumerate(
        (("plaintext", plain), ("tls", tls), ("tls", tls), ("plaintext", plain))
    ):
        name = f"kafka-{mode}-{i}"
        start, rate = _burst_rate(operator_process, cluster, namespace, name, make(name), events)
        starts[mode].append(round(start, 2))
        rates[mode].append(rate)
    plain_rate = sum(rates["plaintext"]) / 2
    tls_rate = sum(rates["tls"]) / 2
    print(
        f"\nkafka-secure: broker start with SASL_SSL {secure_kafka.start_seconds:.1f} s;"
        f" {events} events, first event after (plaintext) {starts['plaintext']} s,"
        f" (mTLS+SCRAM-SHA-512) {starts['tls']} s; events/s plaintext"
        f" {[round(r) for r in rates['plaintext']]}, mTLS+SCRAM {[round(r) for r in rates['tls']]}"
    )
    assert tls_rate > 0.25 * plain_rate, (tls_rate, plain_rate)
