"""Kafka-fed payload logs, the pure parts: names, addresses, and records to CloudEvents.

A monitor with ``spec.data.payloadLog.kafka`` reads its payload log from a Kafka topic
(KServe's logger publishing through Knative Eventing's KafkaSink, or any
CloudEvents-to-Kafka bridge). This module checks what the spec names (bootstrap
``host:port`` addresses, the topic, the consumer group), derives the default consumer
group, and turns one Kafka record into the HTTP-shaped headers and body that
:func:`modelmonitor.core.codecs.cloudevents.parse_events` reads: the CloudEvents Kafka
protocol binding spells binary-mode attributes as ``ce_id``, ``ce_type``... headers,
structured mode as a ``content-type: application/cloudevents+json`` header (or a JSON
value with ``specversion`` and no header at all). Pure: no sockets, no clock.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping

from modelmonitor.core.codecs.cloudevents import STRUCTURED_CONTENT_TYPE

MAX_TOPIC_CHARS = 249  # Kafka's own limit
MAX_GROUP_CHARS = 249
MAX_HOST_CHARS = 253
GROUP_PREFIX = "modelmonitor."  # the operator's own consumer groups
_TOPIC = re.compile(r"^[A-Za-z0-9._-]+$")
_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]+\]$")
MAX_HEADER_CHARS = 4096  # one header value; longer ones are dropped, not decoded


def parse_bootstrap(text: object) -> tuple[str, int] | str:
    """``host:port`` (``[v6]:port`` for an IPv6 address) as (host, port), or why not."""
    if not isinstance(text, str) or not text:
        return "must be a non-empty host:port string"
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        return f"{text!r} is not host:port"
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        return f"{text!r}: the port must be a number from 1 to 65535"
    if _IPV6.match(host):
        host = host[1:-1]
    elif len(host) > MAX_HOST_CHARS or not _HOST.match(host):
        return f"{text!r}: the host must be a lower-case DNS name or an IP address"
    return host, int(port_text)


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` is not a Kafka topic name (None when it is)."""
    if topic in (".", "..") or len(topic) > MAX_TOPIC_CHARS or not _TOPIC.match(topic):
        return (
            f"{topic[:60]!r} is not a Kafka topic name (letters, digits, '.', '_', '-';"
            f" at most {MAX_TOPIC_CHARS} characters; not '.' or '..')"
        )
    return None


def default_group(namespace: str, monitor: str) -> str:
    """The consumer group of a monitor that names none: one per monitor, so two monitors
    reading one topic each see all of it."""
    return f"{GROUP_PREFIX}{namespace}.{monitor}"


MAX_CLIENT_ID_CHARS = 200


def client_id(namespace: str, monitor: str) -> str:
    """The Kafka client id of a monitor's consumer (broker logs, quotas, and the name of
    kafka-python's IO thread, by which its failures are told apart): unique per monitor,
    a long one cut and made unique again by a digest of the whole."""
    full = f"modelmonitor-{namespace}-{monitor}"
    if len(full) <= MAX_CLIENT_ID_CHARS:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:16]
    return f"{full[: MAX_CLIENT_ID_CHARS - 17]}-{digest}"


def group_problem(group: str) -> str | None:
    """Why a monitor may not name consumer group ``group`` (None when it may).

    The ``modelmonitor.`` prefix is the operator's own: a monitor naming another
    monitor's default group would join that group and take part of its partitions away
    from it, so no spec may name a group there (leave it unset for the default)."""
    if len(group) > MAX_GROUP_CHARS or not _TOPIC.match(group):
        return (
            f"{group[:60]!r} is not a consumer group name this operator uses (letters,"
            f" digits, '.', '_', '-'; at most {MAX_GROUP_CHARS} characters)"
        )
    if group.startswith(GROUP_PREFIX):
        return (
            f"groups starting with {GROUP_PREFIX!r} are the operator's own; leave"
            " consumerGroup unset for this monitor's own group"
        )
    return None


def record_message(
    headers: Iterable[tuple[str, bytes | None]], value: bytes | None
) -> tuple[dict[str, str], bytes]:
    """A Kafka record as the headers and body of the HTTP request it would have been.

    Binary mode: ``ce_xyz`` headers become ``ce-xyz`` (values UTF-8; undecodable or
    over-long values are dropped, so the event lacks the attribute and is refused by
    the parser if it needed it). A record without any ``ce_`` header nor content-type
    whose value is a JSON object with ``specversion`` is a structured-mode event."""
    out: dict[str, str] = {}
    for key, raw in headers:
        if raw is None or len(raw) > MAX_HEADER_CHARS:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        lower = key.lower()
        if lower.startswith("ce_"):
            out["ce-" + lower[3:]] = text
        elif lower == "content-type":
            out["content-type"] = text
    body = value or b""
    if "ce-specversion" not in out and "content-type" not in out and _looks_structured(body):
        out["content-type"] = STRUCTURED_CONTENT_TYPE
    return out, body


def _looks_structured(body: bytes) -> bool:
    head = body.lstrip()[:1]
    if head != b"{":
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, Mapping) and "specversion" in doc


def connection_failure(kind: str, message: str) -> str | None:
    """What a user should read for a failed broker connection, from the exception's class
    name and text as kafka-python reports them; None when it says nothing specific (a
    lost socket, a timeout), so a more telling earlier failure is kept.

    The broker's SASL error text names the mechanism, never the password; TLS errors
    are OpenSSL's verify reasons. Both are cut short and cleaned by the caller."""
    if kind == "SaslAuthenticationFailedError":
        detail = message.rpartition("SaslAuthenticationFailedError: ")[2] or message
        return f"SASL authentication failed ({detail.strip()})"
    if kind == "UnsupportedSaslMechanismError":
        return f"SASL mechanism refused by the broker ({message.strip()})"
    if "CERTIFICATE_VERIFY_FAILED" in message:
        detail = message.partition("certificate verify failed:")[2].partition(" (_ssl")[0]
        return (
            "TLS: the broker's certificate is not trusted (certificate verify failed:"
            f" {detail.strip() or 'see tlsConfig.ca'}); check tlsConfig.ca and serverName"
        )
    if "Handshake failed" in message or kind.startswith("SSL"):
        detail = message.rpartition("Handshake failed: ")[2].partition(" (_ssl")[0]
        return f"TLS handshake failed ({detail.strip()})"
    if "[SSL: " in message:  # an alert after the handshake, e.g. a client certificate refused
        detail = "[SSL: " + message.partition("[SSL: ")[2].partition(" (_ssl")[0]
        return f"TLS failed ({detail.strip()}); check tlsConfig.clientCertSecretRef"
    return None
