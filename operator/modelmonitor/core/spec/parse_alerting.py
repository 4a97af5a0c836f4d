"""``spec.alerting``: the sinks that hear a monitor's incidents (docs/notifications.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modelmonitor.core.names import label_problem
from modelmonitor.core.spec.fields import FieldReader
from modelmonitor.core.spec.model import (
    MAX_SINKS,
    SEVERITIES,
    SINK_TYPES,
    AlertingSpec,
    SinkSpec,
)
from modelmonitor.core.spec.parse_prometheus import key_ref

_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,62}$")
MAX_LABELS = 16
MAX_LABEL_VALUE = 256
MAX_URL = 2048
# The labels the operator sets on an Alertmanager alert; a sink's labels may not replace them.
RESERVED_LABELS = frozenset({"alertname", "namespace", "monitor", "target", "severity", "incident"})
# Which sinks need what: the URL in the spec, or a Secret holding the credential.
NEEDS_URL = frozenset({"alertmanager"})
NEEDS_SECRET = frozenset({"pagerduty", "slack", "teams", "webhook", "cloudevents"})
TAKES_URL = frozenset({"alertmanager", "pagerduty"})


def parse_alerting(r: FieldReader, spec: Mapping[str, Any]) -> AlertingSpec:
    data = r.obj(spec, "alerting", "spec")
    if data is None:
        return AlertingSpec()
    path = "spec.alerting"
    link = r.string(data, "link", path)
    if link is not None and (len(link) > MAX_URL or not _URL.match(link)):
        r.problem(f"{path}.link", "must be an http:// or https:// URL")
        link = None
    raw = data.get("sinks", [])
    if not isinstance(raw, list):
        r.problem(f"{path}.sinks", "must be a list")
        raw = []
    if len(raw) > MAX_SINKS:
        r.problem(f"{path}.sinks", f"at most {MAX_SINKS} sinks")
        raw = raw[:MAX_SINKS]
    sinks: list[SinkSpec] = []
    for i, item in enumerate(raw):
        where = f"{path}.sinks[{i}]"
        if not isinstance(item, Mapping):
            r.problem(where, "must be an object")
            continue
        sink = _sink(r, item, where)
        if sink is None:
            continue
        if any(s.name == sink.name for s in sinks):
            r.problem(f"{where}.name", f"duplicate sink name {sink.name!r}")
            continue
        sinks.append(sink)
    return AlertingSpec(sinks=tuple(sinks), link=link)


def _sink(r: FieldReader, data: Mapping[str, Any], where: str) -> SinkSpec | None:
    name = r.name(data, "name", where, label_problem)
    type_ = r.string(data, "type", where, required=True, choices=SINK_TYPES)
    severity = r.string(
        data, "minSeverity", where, default=SinkSpec.min_severity, choices=SEVERITIES
    )
    url = r.string(data, "url", where)
    if url is not None and (len(url) > MAX_URL or not _URL.match(url)):
        r.problem(f"{where}.url", "must be an http:// or https:// URL without query or fragment")
        url = None
    secret = key_ref(r, data, "secretRef", where)
    resend = r.integer(
        data, "resendSeconds", where, default=SinkSpec.resend_seconds, low=10, high=3600
    )
    labels = _labels(r, data, where)
    if name is None or type_ is None:
        return None
    if type_ in NEEDS_URL and url is None and "url" not in data:
        r.problem(f"{where}.url", f"is required for type {type_}")
    if type_ not in TAKES_URL and "url" in data:
        r.problem(
            f"{where}.url",
            f"is not used by type {type_}: its webhook URL is a credential, give it in secretRef",
        )
    if type_ in NEEDS_SECRET and secret is None and "secretRef" not in data:
        r.problem(f"{where}.secretRef", f"is required for type {type_}")
    if type_ not in NEEDS_SECRET and "secretRef" in data:
        r.problem(f"{where}.secretRef", f"is not used by type {type_}")
    if labels and type_ != "alertmanager":
        r.problem(f"{where}.labels", "only type alertmanager takes labels")
    return SinkSpec(
        name=name,
        type=type_,  # type: ignore[arg-type]
        min_severity=severity or SinkSpec.min_severity,  # type: ignore[arg-type]
        url=url,
        secret=secret,
        labels=labels,
        resend_seconds=resend,
    )


def _labels(r: FieldReader, data: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    raw = data.get("labels")
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        r.problem(f"{where}.labels", "must be an object of strings")
        return ()
    if len(raw) > MAX_LABELS:
        r.problem(f"{where}.labels", f"at most {MAX_LABELS} labels")
        return ()
    labels: list[tuple[str, str]] = []
    for key, value in raw.items():
        if not isinstance(key, str) or not _LABEL_NAME.match(key):
            r.problem(f"{where}.labels", f"{key!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        elif key in RESERVED_LABELS:
            r.problem(f"{where}.labels.{key}", "is set by the operator")
        elif not isinstance(value, str) or len(value) > MAX_LABEL_VALUE:
            r.problem(f"{where}.labels.{key}", f"must be a string of at most {MAX_LABEL_VALUE}")
        else:
            labels.append((key, value))
    return tuple(sorted(labels))
