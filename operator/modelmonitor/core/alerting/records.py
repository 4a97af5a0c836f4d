"""``status.alerting`` as typed records: the outbox entries and each sink's delivery state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from modelmonitor.core import records
from modelmonitor.core.spec import SEVERITIES  # lowest first: a sink hears those at or above

MAX_MEASUREMENTS = 10
MAX_TEXT = 1024


class NoticeEvent(StrEnum):
    """What happened to the incident."""

    OPENED = "opened"  # Suspect -> confirmed (Breached or Remediating)
    ACTION = "action"  # an action's result was recorded
    REFRESH = "refresh"  # still open: re-sent so an Alertmanager alert does not expire
    RESOLVED = "resolved"  # the incident closed: healthy again


class Delivery(StrEnum):
    """``status.alerting.sinks[].lastResult`` and the ``result`` label of the metric."""

    DELIVERED = "delivered"  # the receiver accepted it (2xx)
    RETRYING = "retrying"  # failed; another attempt is scheduled
    FAILED = "failed"  # given up: refused (4xx), or out of attempts
    DROPPED = "dropped"  # never sent: the outbox was full, or the sink was removed


def incident_severity(triggers: Iterable[str]) -> str:
    """An SLO breach pages (critical); drift alone is a warning."""
    return "critical" if "slo" in set(triggers) else "warning"


def severity_reaches(severity: str, minimum: str) -> bool:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return rank.get(severity, len(SEVERITIES)) >= rank.get(minimum, 0)


def cap(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Notice(records.Record):
    """One thing every sink hears about an incident; the same ``id`` for every sink.

    ids: ``<incident>-opened``, ``<action request id>-result``, ``<incident>-refresh-<UTC
    time>``, ``<incident>-resolved``; stable across restarts because they are written to
    status before anything is sent.
    """

    id: str = records.key("id", records.text, default="")
    event: str = records.key("event", records.text, default="")  # a NoticeEvent
    incident: str = records.key("incident", records.text, default="")
    severity: str = records.key("severity", records.text, default="warning")
    summary: str = records.key("summary", records.text, default="")  # one line, for people
    triggers: tuple[str, ...] = records.key(
        "triggers", records.texts, default=(), write=records.as_list
    )
    # [{"name", "kind" (latency|errorRatio|drift), "value", "threshold", "unit", "met"}]
    measurements: tuple[dict[str, Any], ...] = records.key(
        "measurements", records.objs, default=(), write=records.as_dicts
    )
    # action notices: {"type", "id", "result", "reason", "message", "dryRun"}
    action: dict[str, Any] | None = records.key("action", records.obj, write=records.as_dict)
    started_at: str = records.key("startedAt", records.text, default="")  # incident confirmed
    time: str = records.key("time", records.text, default="")  # when this happened
    # Alertmanager: how long a firing alert stays valid without a re-send (its endsAt)
    valid_seconds: int | None = records.key("validSeconds", records.integer)


@dataclass(frozen=True)
class OutboxEntry(Notice):
    """A notice for one sink, waiting to be delivered (``status.alerting.outbox[]``)."""

    sink: str = records.key("sink", records.text, default="")
    attempts: int = records.key("attempts", records.integer, default=0)
    next_attempt_at: str = records.key("nextAttemptAt", records.text, default="")  # "" = now
    last_error: str = records.key("lastError", records.text, default="")

    @classmethod
    def of(cls, notice: Notice, sink: str) -> OutboxEntry:
        values = {f.name: getattr(notice, f.name) for f in fields(Notice)}
        values.pop("extra"), values.pop("absent")
        return cls(**values, sink=sink)

    @property
    def key(self) -> tuple[str, str]:
        return (self.id, self.sink)


@dataclass(frozen=True)
class SinkState(records.Record):
    """``status.alerting.sinks[]``: what one sink was sent, in counts and its last result."""

    name: str = records.key("name", records.text, default="")
    type: str = records.key("type", records.text, default="")
    delivered: int = records.key("delivered", records.integer, default=0)
    failed: int = records.key("failed", records.integer, default=0)
    dropped: int = records.key("dropped", records.integer, default=0)
    last_result: str = records.key("lastResult", records.text, default="")  # a Delivery
    last_attempt_at: str | None = records.key("lastAttemptAt", records.text)
    last_delivered_at: str | None = records.key("lastDeliveredAt", records.text)
    last_error: str = records.key("lastError", records.text, default="")
    # Alertmanager: the open incident whose alert was last accepted, and when
    firing_incident: str | None = records.key("firingIncident", records.text)
    last_firing_at: str | None = records.key("lastFiringAt", records.text)


@dataclass(frozen=True)
class AlertingStatus(records.Record):
    """``status.alerting``: the outbox (oldest first) and each sink's delivery state."""

    outbox: tuple[OutboxEntry, ...] = records.key(
        "outbox", records.records(OutboxEntry), default=(), write=records.record_dicts
    )
    sinks: tuple[SinkState, ...] = records.key(
        "sinks", records.records(SinkState), default=(), write=records.record_dicts
    )

    def sink(self, name: str, type_: str = "") -> SinkState:
        found = next((s for s in self.sinks if s.name == name), None)
        return found if found is not None else SinkState(name=name, type=type_)
