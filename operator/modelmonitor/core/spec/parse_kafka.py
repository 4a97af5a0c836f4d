"""``spec.data.payloadLog.kafka``: the topic a payload log is also read from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelmonitor.core.kafka import group_problem, parse_bootstrap, topic_problem
from modelmonitor.core.spec.fields import FieldReader
from modelmonitor.core.spec.model import MAX_KAFKA_BOOTSTRAP, KafkaSpec


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
    if not servers or topic is None:
        return None
    return KafkaSpec(tuple(servers), topic, group)
