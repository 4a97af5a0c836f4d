"""Incident notifications: queue the lifecycle in status, deliver the outbox, record it.

The glue between remediation's status writes and :mod:`modelmonitor.core.alerting`:

* :func:`queue_lifecycle` runs inside the run's status write (the same write as the
  policy's decision): the incident's ``opened`` and ``resolved`` notices, and the
  Alertmanager re-sends of an open incident, enter ``status.alerting.outbox``;
* :func:`queue_action_result` runs inside the write that records an action's result;
* :func:`deliver` makes one attempt per due entry (on a worker thread; the sender is
  :mod:`modelmonitor.actions.alerting`) and :func:`record_deliveries` writes the
  attempts back (delivered entries leave the outbox, failed ones wait their backoff).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modelmonitor.actions import alerting as alert_sender
from modelmonitor.adapters.webhook import Post
from modelmonitor.core import alerting
from modelmonitor.core.alerting import notices
from modelmonitor.core.alerting.payloads import Subject
from modelmonitor.core.cluster import ClusterApi, NamespacedApi
from modelmonitor.core.incident import ActionRequest, ActionResult, Incident, IncidentState
from modelmonitor.core.policy import Decision, PolicyContext
from modelmonitor.core.spec import MonitorSpec, SinkSpec, SpecError, parse_spec
from modelmonitor.core.status import format_time, replacing
from modelmonitor.core.verdict import Verdict

log = logging.getLogger(__name__)


def read_alerting(status: Mapping[str, Any]) -> alerting.AlertingStatus:
    """``status.alerting`` as its record (an empty outbox, when there is none)."""
    value = status.get("alerting")
    return alerting.AlertingStatus.from_dict(value if isinstance(value, Mapping) else {})


def _spec_of(obj: Mapping[str, Any]) -> MonitorSpec | None:
    try:
        return parse_spec(obj.get("spec") or {})
    except SpecError:
        return None


def _valid_seconds(spec: MonitorSpec) -> int:
    """How long a firing Alertmanager alert stays valid without a re-send: four re-send
    periods (as Prometheus does), a period being the longer of the run interval and the
    sinks' resendSeconds."""
    resend = [s.resend_seconds for s in spec.alerting.sinks if s.type == "alertmanager"]
    return int(4 * max([spec.schedule.interval_seconds, *resend]))


def _queued(
    status: Mapping[str, Any],
    queue: Sequence[alerting.Notice],
    sinks: Sequence[SinkSpec],
) -> dict[str, Any] | None:
    """The ``status.alerting`` patch with ``queue`` in the outbox; None if nothing changed."""
    old = read_alerting(status)
    new = alerting.enqueue(old, queue, sinks)
    if new == old:
        return None
    return replacing(status.get("alerting"), new.to_dict())  # type: ignore[no-any-return]


_CONFIRMED = (IncidentState.BREACHED, IncidentState.REMEDIATING)


def queue_lifecycle(
    status: Mapping[str, Any],
    spec: MonitorSpec,
    ctx: PolicyContext,
    decision: Decision,
    verdict: Verdict,
    now: dt.datetime,
) -> dict[str, Any] | None:
    """The incident's opened and resolved notices, and Alertmanager's re-sends, queued in
    the same status write as the decision (so before anything is sent)."""
    sinks = spec.alerting.sinks
    if not sinks:
        return None
    incident = decision.incident
    stamp = format_time(now)
    found = notices.measurements(verdict.status_patch, spec.drift.drift_share)
    valid = _valid_seconds(spec)
    old_state, new_state = decision.transition or (incident.state, incident.state)
    queue: list[alerting.Notice] = []
    if new_state in _CONFIRMED and old_state not in _CONFIRMED:
        queue.append(
            notices.opened(
                incident,
                namespace=ctx.namespace,
                monitor=ctx.monitor,
                found=found,
                time=stamp,
                valid_seconds=valid,
            )
        )
    elif old_state in _CONFIRMED and new_state not in _CONFIRMED:
        queue.append(
            notices.resolved(
                incident, namespace=ctx.namespace, monitor=ctx.monitor, found=found, time=stamp
            )
        )
    patch = _queued(status, queue, sinks) if queue else None
    if incident.state in _CONFIRMED and incident.id and not queue:
        current = notices.opened(
            incident,
            namespace=ctx.namespace,
            monitor=ctx.monitor,
            found=found,
            time=stamp,
            valid_seconds=valid,
        )
        alert_status = read_alerting(status)
        for sink, notice in alerting.refresh_notices(alert_status, current, sinks, now):
            alert_status = alerting.enqueue(alert_status, [notice], [sink])
        if alert_status != read_alerting(status):
            patch = replacing(status.get("alerting"), alert_status.to_dict())
    return patch


def queue_action_result(
    obj: Mapping[str, Any],
    incident: Incident,
    request: ActionRequest,
    result: ActionResult,
    now: dt.datetime,
) -> dict[str, Any] | None:
    """The ``status.alerting`` patch with the action's result queued for every sink."""
    spec = _spec_of(obj)
    if spec is None or not spec.alerting.sinks:
        return None
    notice = notices.action_result(
        incident, request, result, time=format_time(now), valid_seconds=_valid_seconds(spec)
    )
    return _queued(obj.get("status") or {}, [notice], spec.alerting.sinks)


def deliveries_due(obj: Mapping[str, Any], now: dt.datetime) -> bool:
    """Whether ``status.alerting.outbox`` holds an entry due now."""
    when = alerting.next_due(read_alerting(obj.get("status") or {}))
    return when is not None and when <= now


def deliver(
    api: ClusterApi,
    post: Post,
    clock: Callable[[], dt.datetime],
    spec: MonitorSpec,
    obj: Mapping[str, Any],
    now: dt.datetime,
) -> list[alerting.Attempt]:
    """One attempt for each due outbox entry, through ``post`` (the fenced POST)."""
    due = alerting.due_entries(read_alerting(obj.get("status") or {}), now)
    if not due:
        return []
    metadata = obj.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    subject = Subject(
        namespace=namespace,
        monitor=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
        target_kind=spec.target.kind,
        target_name=spec.target.name,
        link=spec.alerting.link,
    )
    try:
        # Scoped to the monitor's namespace: a Secret elsewhere is refused, never read.
        return alert_sender.deliver(
            NamespacedApi(api, namespace), subject, spec.alerting.sinks, due, post=post, now=clock
        )
    except Exception:  # a sender bug must not stop the monitor's loop
        log.exception("delivering notifications of %s/%s failed", namespace, subject.monitor)
        return []


def record_deliveries(
    obj: Mapping[str, Any],
    spec: MonitorSpec,
    attempts: Sequence[alerting.Attempt],
    now: dt.datetime,
) -> tuple[dict[str, Any] | None, list[tuple[str, str, str]]]:
    """The status patch recording ``attempts``; and (sink, type, result) for the metric."""
    status = obj.get("status") or {}
    old = read_alerting(status)
    new, counted = alerting.apply_attempts(old, attempts, now, spec.alerting.sinks)
    if new == old:
        return None, counted
    return {"alerting": replacing(status.get("alerting"), new.to_dict())}, counted
