"""``spec.data.payloadLog.kafka``: the topic a payload log is also read from, and how
the consumer connects to its brokers (TLS, SASL).

``tlsConfig`` has the shape of ``spec.prometheus.tlsConfig`` (one parser for both) minus
``insecureSkipVerify``: a Kafka connection either verifies the brokers or is not made.
SASL without TLS sends the credentials over the wire unencrypted (PLAIN: the password
itself), so it needs ``sasl.allowWithoutTLS: true``, a decision the user writes down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelmonitor.core.kafka import group_problem, parse_bootstrap, topic_problem
from modelmonitor.core.spec.fields import FieldReader
from modelmonitor.core.spec.model import (
    KAFKA_SASL_MECHANISMS,
    MAX_KAFKA_BOOTSTRAP,
    KafkaSASLSpec,
    KafkaSpec,
    PrometheusTLSSpec,
)
from modelmonitor.core.spec.parse_prometheus import key_ref, tls_config


def parse_kafka(r: FieldReader, pl: Mapping[str, Any], parent: str) -> KafkaSpec | None:
    """spec.data.payloadLog.kafka: where the payload log is read from, besides HTTP."""
    k = r.obj(pl, "kafka", parent)
    if k is None:
        return None
    path = f"{parent}.kafka"
    servers: list[tuple[str, int]] = []
    raw = k.get("bootstrapServers")
    if not isinstance(raw, list) or not raw:
        r.problem(f"{path}.bootstrapServers", "must be a non-empty list of host:port")
    elif len(raw) > MAX_KAFKA_BOOTSTRAP:
        r.problem(f"{path}.bootstrapServers", f"at most {MAX_KAFKA_BOOTSTRAP} addresses")
    else:
        for i, item in enumerate(raw):
            parsed = parse_bootstrap(item)
            if isinstance(parsed, str):
                r.problem(f"{path}.bootstrapServers[{i}]", parsed)
            else:
                servers.append(parsed)
    topic = r.string(k, "topic", path, required=True)
    if topic is not None:
        problem = topic_problem(topic)
        if problem is not None:
            r.problem(f"{path}.topic", problem)
    group = r.string(k, "consumerGroup", path)
    if group is not None and (problem := group_problem(group)) is not None:
        r.problem(f"{path}.consumerGroup", problem)
    tls = _tls(r, k, path)
    sasl = _sasl(r, k, path, tls is not None or "tlsConfig" in k)
    if not servers or topic is None:
        return None
    return KafkaSpec(tuple(servers), topic, group, tls=tls, sasl=sasl)


def _tls(r: FieldReader, k: Mapping[str, Any], path: str) -> PrometheusTLSSpec | None:
    tls = tls_config(r, k, path)
    if tls is not None and tls.insecure_skip_verify:
        r.problem(
            f"{path}.tlsConfig.insecureSkipVerify",
            "is not supported for Kafka: give the brokers' CA in tlsConfig.ca",
        )
        return None
    return tls


def _sasl(r: FieldReader, k: Mapping[str, Any], path: str, tls: bool) -> KafkaSASLSpec | None:
    sasl = r.obj(k, "sasl", path)
    if sasl is None:
        return None
    where = f"{path}.sasl"
    mechanism = r.string(sasl, "mechanism", where, required=True, choices=KAFKA_SASL_MECHANISMS)
    refs = []
    for part in ("username", "password"):
        if part not in sasl:
            r.problem(f"{where}.{part}", "is required")
        refs.append(key_ref(r, sasl, part, where))
    allow = r.boolean(sasl, "allowWithoutTLS", where, default=False)
    if not tls and not allow:
        r.problem(
            where,
            "SASL without tlsConfig sends the credentials unencrypted (PLAIN: the password"
            " itself); add tlsConfig, or set sasl.allowWithoutTLS: true on a network you trust",
        )
        return None
    username, password = refs
    if mechanism is None or username is None or password is None:
        return None
    return KafkaSASLSpec(mechanism, username, password, allow_without_tls=allow)  # type: ignore[arg-type]
