"""What each sink type is sent for an outbox entry: URL, body, headers (pure).

* ``alertmanager``: Alertmanager API v2, ``POST <url>/api/v2/alerts`` with one alert.
  Labels identify the alert (Alertmanager de-duplicates on them): ``alertname``
  ``ModelMonitorIncident``, ``namespace``, ``monitor``, ``target``, ``severity``,
  ``incident``, plus the sink's ``labels``. A firing alert's ``endsAt`` is ``validSeconds``
  ahead (the operator re-sends before then); a resolve sets ``endsAt`` to the time it
  resolved.
* ``pagerduty``: Events API v2, ``POST <url>/v2/enqueue``: ``trigger`` (opened, and each
  action's result, which PagerDuty adds to the same alert) and ``resolve``, with
  ``dedup_key`` = the incident id; a rollback that changed the cluster is also sent as a
  change event (``POST <url>/v2/change/enqueue``).
* ``slack``: an incoming-webhook message in Block Kit, with a plain ``text`` fallback.
* ``teams``: a message with one Adaptive Card (1.4), as Teams incoming webhooks and
  Workflows ("Post to a channel when a webhook request is received") accept.
* ``webhook``: the notice as JSON (``kind: ModelMonitorIncidentNotice``, ``version: v1``).
* ``cloudevents``: the same JSON as the ``data`` of a CloudEvent 1.0 in structured mode
  (``application/cloudevents+json``), type ``io.modelmonitor.incident.<event>``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelmonitor.core.alerting.records import NoticeEvent, OutboxEntry, cap
from modelmonitor.core.spec import PAGERDUTY_URL, SinkSpec
from modelmonitor.core.status import format_time

NOTICE_KIND = "ModelMonitorIncidentNotice"
NOTICE_VERSION = "v1"
NOTICE_ID_HEADER = "X-ModelMonitor-Notice-Id"
ALERT_NAME = "ModelMonitorIncident"
CLOUDEVENT_TYPE = "io.modelmonitor.incident."
_SLACK_TEXT_MAX = 3000


@dataclass(frozen=True)
class Subject:
    """The monitor an incident belongs to, and how people find it."""

    namespace: str
    monitor: str
    uid: str
    target_kind: str
    target_name: str
    link: str | None = None  # spec.alerting.link

    @property
    def ref(self) -> str:
        """The monitor's API path: a reference to the object that needs no console."""
        return (
            f"/apis/modelmonitor.io/v1alpha1/namespaces/{self.namespace}"
            f"/modelmonitors/{self.monitor}"
        )

    @property
    def kubectl(self) -> str:
        return f"kubectl -n {self.namespace} describe modelmonitor {self.monitor}"

    @property
    def target(self) -> str:
        return f"{self.target_kind}/{self.target_name}"


@dataclass(frozen=True)
class Outgoing:
    """One POST: where, what, and its headers (the URL may be a credential: never logged)."""

    url: str
    body: bytes
    headers: Mapping[str, str]


class MissingCredentialError(ValueError):
    """The sink needs a Secret's value (webhook URL, routing key) and has none."""


def _measured(entry: OutboxEntry) -> str:
    parts = []
    for m in entry.measurements:
        value, threshold, unit = m.get("value"), m.get("threshold"), m.get("unit", "")
        relation = "breached" if m.get("met") is False else "ok"
        parts.append(f"{m.get('name')}: {value}{unit} vs {threshold}{unit} ({relation})")
    return "; ".join(parts)


def notice_json(entry: OutboxEntry, subject: Subject) -> dict[str, Any]:
    """The generic JSON body (``webhook``; ``data`` of the CloudEvent)."""
    body: dict[str, Any] = {
        "kind": NOTICE_KIND,
        "version": NOTICE_VERSION,
        "id": entry.id,
        "event": entry.event,
        "incident": entry.incident,
        "severity": entry.severity,
        "summary": entry.summary,
        "monitor": {
            "namespace": subject.namespace,
            "name": subject.monitor,
            "uid": subject.uid,
            "ref": subject.ref,
        },
        "target": {"kind": subject.target_kind, "name": subject.target_name},
        "triggers": list(entry.triggers),
        "measurements": [dict(m) for m in entry.measurements],
        "startedAt": entry.started_at,
        "time": entry.time,
    }
    if entry.action is not None:
        body["action"] = dict(entry.action)
    if subject.link:
        body["link"] = subject.link
    return body


def alertmanager_alert(
    entry: OutboxEntry, sink: SinkSpec, subject: Subject, now: dt.datetime
) -> dict[str, Any]:
    labels = {
        "alertname": ALERT_NAME,
        "namespace": subject.namespace,
        "monitor": subject.monitor,
        "target": subject.target,
        "severity": entry.severity,
        "incident": entry.incident,
        **dict(sink.labels),
    }
    if entry.event == NoticeEvent.RESOLVED:
        ends = entry.time or format_time(now)
    else:
        ends = format_time(now + dt.timedelta(seconds=entry.valid_seconds or 4 * 60))
    annotations = {
        "summary": entry.summary,
        "description": cap(_measured(entry)) or entry.summary,
        "event": entry.event,
        "monitorRef": subject.ref,
        "command": subject.kubectl,
    }
    if entry.action is not None:
        annotations["lastAction"] = cap(
            f"{entry.action.get('type')} {entry.action.get('result')}: "
            f"{entry.action.get('message')}"
        )
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": entry.started_at or entry.time,
        "endsAt": ends,
    }
    if subject.link:
        alert["generatorURL"] = subject.link
    return alert


def _pd_links(subject: Subject) -> list[dict[str, str]]:
    return [{"href": subject.link, "text": "ModelMonitor"}] if subject.link else []


def pagerduty_events(
    entry: OutboxEntry, routing_key: str, subject: Subject
) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) for each PagerDuty request of ``entry``."""
    if entry.event == NoticeEvent.RESOLVED:
        return [
            (
                "/v2/enqueue",
                {
                    "routing_key": routing_key,
                    "event_action": "resolve",
                    "dedup_key": entry.incident,
                },
            )
        ]
    details: dict[str, Any] = {
        "event": entry.event,
        "incident": entry.incident,
        "monitor": subject.ref,
        "command": subject.kubectl,
        "triggers": list(entry.triggers),
        "measurements": [dict(m) for m in entry.measurements],
    }
    if entry.action is not None:
        details["action"] = dict(entry.action)
    trigger: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": entry.incident,
        "payload": {
            "summary": cap(entry.summary, 1024),
            "source": f"{subject.namespace}/{subject.monitor}",
            "severity": entry.severity,
            "timestamp": entry.time,
            "component": subject.target,
            "group": subject.namespace,
            "class": ",".join(entry.triggers) or "breach",
            "custom_details": details,
        },
        "client": "ModelMonitor",
        "links": _pd_links(subject),
    }
    if subject.link:
        trigger["client_url"] = subject.link
    events = [("/v2/enqueue", trigger)]
    action = entry.action or {}
    if action.get("type") == "rollback" and action.get("result") == "succeeded":
        change = {
            "routing_key": routing_key,
            "payload": {
                "summary": cap(f"rollback of {subject.target}: {action.get('message')}", 1024),
                "timestamp": entry.time,
                "source": f"{subject.namespace}/{subject.monitor}",
                "custom_details": {"incident": entry.incident, "action": dict(action)},
            },
            "links": _pd_links(subject),
        }
        events.append(("/v2/change/enqueue", change))
    return events


def _mrkdwn(text: str, limit: int = _SLACK_TEXT_MAX) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return cap(escaped, limit)


_TITLES = {
    NoticeEvent.OPENED: "Incident opened",
    NoticeEvent.ACTION: "Action result",
    NoticeEvent.REFRESH: "Incident still open",
    NoticeEvent.RESOLVED: "Incident resolved",
}


def _title(entry: OutboxEntry, subject: Subject) -> str:
    what = (
        _TITLES.get(NoticeEvent(entry.event), entry.event)
        if entry.event in {e.value for e in NoticeEvent}
        else entry.event
    )
    return cap(f"{what} ({entry.severity}): {subject.namespace}/{subject.monitor}", 150)


def _facts(entry: OutboxEntry, subject: Subject) -> list[tuple[str, str]]:
    facts = [
        ("Incident", entry.incident),
        ("Target", subject.target),
        ("Triggers", ", ".join(entry.triggers) or "-"),
        ("Measured", _measured(entry) or "-"),
        ("Monitor", subject.kubectl),
    ]
    if entry.action is not None:
        facts.append(("Action", f"{entry.action.get('type')}: {entry.action.get('result')}"))
    return facts


def slack_message(entry: OutboxEntry, subject: Subject) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _title(entry, subject)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(entry.summary)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _mrkdwn(f"*{name}*\n{value}", 2000)}
                for name, value in _facts(entry, subject)
            ],
        },
    ]
    context = f"{entry.id} · {entry.time}"
    if subject.link:
        context += f" · <{subject.link}|open>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": cap(context, 300)}]})
    return {"text": _mrkdwn(f"[modelmonitor] {entry.summary}"), "blocks": blocks}


def teams_message(entry: OutboxEntry, subject: Subject) -> dict[str, Any]:
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": _title(entry, subject),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
                "color": "Good" if entry.event == NoticeEvent.RESOLVED else "Attention",
            },
            {"type": "TextBlock", "text": entry.summary, "wrap": True},
            {
                "type": "FactSet",
                "facts": [
                    {"title": name, "value": value} for name, value in _facts(entry, subject)
                ],
            },
        ],
    }
    if subject.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": subject.link}]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def cloudevent(entry: OutboxEntry, subject: Subject) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": entry.id,
        "source": subject.ref,
        "type": CLOUDEVENT_TYPE + entry.event,
        "subject": entry.incident,
        "time": entry.time,
        "datacontenttype": "application/json",
        "data": notice_json(entry, subject),
    }


def _json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def render(
    entry: OutboxEntry,
    sink: SinkSpec,
    subject: Subject,
    *,
    secret: str | None,
    now: dt.datetime,
) -> list[Outgoing]:
    """The requests that deliver ``entry`` to ``sink`` (``secret``: the Secret's value)."""
    plain = {"Content-Type": "application/json", NOTICE_ID_HEADER: entry.id}
    if sink.type == "alertmanager":
        url = (sink.url or "").rstrip("/") + "/api/v2/alerts"
        return [Outgoing(url, _json([alertmanager_alert(entry, sink, subject, now)]), plain)]
    if not secret:
        raise MissingCredentialError(sink.type)
    if sink.type == "pagerduty":
        base = (sink.url or PAGERDUTY_URL).rstrip("/")
        return [
            Outgoing(base + path, _json(body), {"Content-Type": "application/json"})
            for path, body in pagerduty_events(entry, secret, subject)
        ]
    if sink.type == "slack":
        return [Outgoing(secret, _json(slack_message(entry, subject)), plain)]
    if sink.type == "teams":
        return [Outgoing(secret, _json(teams_message(entry, subject)), plain)]
    if sink.type == "webhook":
        return [Outgoing(secret, _json(notice_json(entry, subject)), plain)]
    if sink.type == "cloudevents":
        headers = {"Content-Type": "application/cloudevents+json", NOTICE_ID_HEADER: entry.id}
        return [Outgoing(secret, _json(cloudevent(entry, subject)), headers)]
    raise ValueError(f"unknown sink type {sink.type!r}")
