"""The outbox state machine: enqueue notices, pick what is due, apply delivery attempts.

Delivery is at least once. A notice enters ``status.alerting.outbox`` in the same status
write as the decision that caused it, before anything is sent; it leaves when its sink
accepted it, refused it (a 4xx other than 408/429), or ran out of attempts. An operator
that stops between sending and recording sends the same entry again after its restart:
the receivers de-duplicate on ids that do not change (Alertmanager on the alert's labels,
PagerDuty on ``dedup_key`` = the incident id, webhooks on the notice id).

Per sink, entries go out in order: a later one waits while an earlier one is retried, so
a resolve never overtakes the trigger it resolves. For the sinks that keep state
(Alertmanager, PagerDuty) a resolve replaces the undelivered notices of its incident: the
receiver only needs the last state, and a trigger sent after its resolve would re-open
the alert. The outbox is bounded (:data:`OUTBOX_CAP`); when full, refreshes go first,
then action results, then opened notices, and resolves last.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from modelmonitor.core.alerting.records import (
    AlertingStatus,
    Delivery,
    Notice,
    NoticeEvent,
    OutboxEntry,
    SinkState,
    severity_reaches,
)
from modelmonitor.core.spec import SinkSpec
from modelmonitor.core.status import format_time

OUTBOX_CAP = 30
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 300.0
MAX_ATTEMPTS = 20  # about 75 minutes of retrying at the capped backoff
STATE_SINKS = frozenset({"alertmanager", "pagerduty"})
# When the outbox is full, what goes first (lower first).
_EVICTION_ORDER = {
    NoticeEvent.REFRESH: 0,
    NoticeEvent.ACTION: 1,
    NoticeEvent.OPENED: 2,
    NoticeEvent.RESOLVED: 3,
}


@dataclass(frozen=True)
class Attempt:
    """One try to deliver an outbox entry: accepted, or why not."""

    id: str
    sink: str
    ok: bool
    retryable: bool = False
    error: str = ""  # "HTTP 503", "ConnectionRefusedError", "SecretNotFound": never a URL


def backoff_seconds(attempts: int) -> float:
    """The wait after the ``attempts``-th failure: 5 s, 10 s, 20 s ... capped at 300 s."""
    if attempts < 1:
        return 0.0
    return float(min(BACKOFF_BASE_SECONDS * 2 ** min(attempts - 1, 30), BACKOFF_CAP_SECONDS))


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _replace_sink(status: AlertingStatus, state: SinkState) -> AlertingStatus:
    sinks = [s for s in status.sinks if s.name != state.name]
    index = next((i for i, s in enumerate(status.sinks) if s.name == state.name), len(sinks))
    sinks.insert(index, state)
    return replace(status, sinks=tuple(sinks))


def enqueue(
    status: AlertingStatus,
    notices: Iterable[Notice],
    sinks: Sequence[SinkSpec],
    *,
    cap: int = OUTBOX_CAP,
) -> AlertingStatus:
    """``status`` with each notice queued for every sink whose minSeverity it reaches.

    An entry already queued (same notice id and sink) is not queued twice.
    """
    outbox = list(status.outbox)
    kinds = {s.name: s.type for s in sinks}
    for notice in notices:
        for sink in sinks:
            if not severity_reaches(notice.severity, sink.min_severity):
                continue
            if any(e.key == (notice.id, sink.name) for e in outbox):
                continue
            if notice.event == NoticeEvent.RESOLVED and sink.type in STATE_SINKS:
                outbox = [
                    e for e in outbox if not (e.sink == sink.name and e.incident == notice.incident)
                ]
            outbox.append(OutboxEntry.of(notice, sink.name))
    result = replace(status, outbox=tuple(outbox))
    for sink in sinks:  # every configured sink shows in status, even before its first send
        if not any(s.name == sink.name for s in result.sinks):
            result = replace(
                result, sinks=(*result.sinks, SinkState(name=sink.name, type=sink.type))
            )
    return _bounded(result, cap, kinds)


def _bounded(status: AlertingStatus, cap: int, kinds: Mapping[str, str]) -> AlertingStatus:
    outbox = list(status.outbox)
    while len(outbox) > cap:
        victim = min(
            range(len(outbox)),
            key=lambda i: (
                _EVICTION_ORDER.get(NoticeEvent(outbox[i].event), 0)
                if outbox[i].event in NoticeEvent._value2member_map_
                else -1,
                i,
            ),
        )
        gone = outbox.pop(victim)
        state = status.sink(gone.sink, kinds.get(gone.sink, ""))
        status = _replace_sink(
            status,
            replace(
                state,
                dropped=state.dropped + 1,
                last_result=Delivery.DROPPED,
                last_error="OutboxFull",
            ),
        )
    return replace(status, outbox=tuple(outbox))


def due_entries(status: AlertingStatus, now: dt.datetime, *, limit: int = 10) -> list[OutboxEntry]:
    """What to try now, in order: per sink, its entries from the oldest on, provided the
    oldest is due (a later entry never overtakes one waiting for its retry)."""
    heads: dict[str, bool] = {}
    due: list[OutboxEntry] = []
    for entry in status.outbox:
        if entry.sink not in heads:
            when = _parse(entry.next_attempt_at)
            heads[entry.sink] = when is None or when <= now
        if heads[entry.sink] and len(due) < limit:
            due.append(entry)
    return due


def next_due(status: AlertingStatus) -> dt.datetime | None:
    """The earliest time an entry becomes due (None: nothing queued; past: due now): each
    sink's oldest entry decides for the sink's others."""
    heads: dict[str, dt.datetime] = {}
    for entry in status.outbox:
        if entry.sink not in heads:
            heads[entry.sink] = _parse(entry.next_attempt_at) or dt.datetime.min.replace(
                tzinfo=dt.UTC
            )
    return min(heads.values(), default=None)


def apply_attempts(
    status: AlertingStatus,
    attempts: Sequence[Attempt],
    now: dt.datetime,
    sinks: Sequence[SinkSpec],
) -> tuple[AlertingStatus, list[tuple[str, str, str]]]:
    """``status`` after ``attempts``; and (sink, type, result) per attempt, for the metric.

    Entries of sinks no longer configured are dropped. An attempt for an entry that is no
    longer queued (a resolve replaced it meanwhile) only updates the sink's counters.
    """
    stamp = format_time(now)
    kinds = {s.name: s.type for s in sinks}
    counted: list[tuple[str, str, str]] = []
    outbox = {e.key: e for e in status.outbox}
    order = [e.key for e in status.outbox]
    for attempt in attempts:
        key = (attempt.id, attempt.sink)
        entry = outbox.get(key)
        state = status.sink(attempt.sink, kinds.get(attempt.sink, ""))
        state = replace(state, last_attempt_at=stamp)
        if attempt.ok:
            result = Delivery.DELIVERED
            state = replace(
                state,
                delivered=state.delivered + 1,
                last_result=result,
                last_delivered_at=stamp,
                last_error="",
            )
            if entry is not None and state.type == "alertmanager":
                if entry.event == NoticeEvent.RESOLVED:
                    if state.firing_incident == entry.incident:
                        state = replace(state, firing_incident=None, last_firing_at=None)
                else:
                    state = replace(state, firing_incident=entry.incident, last_firing_at=stamp)
            outbox.pop(key, None)
        else:
            tries = (entry.attempts if entry is not None else 0) + 1
            if attempt.retryable and tries < MAX_ATTEMPTS:
                result = Delivery.RETRYING
                if entry is not None:
                    wait = dt.timedelta(seconds=backoff_seconds(tries))
                    outbox[key] = replace(
                        entry,
                        attempts=tries,
                        next_attempt_at=format_time(now + wait),
                        last_error=attempt.error,
                    )
            else:
                result = Delivery.FAILED
                outbox.pop(key, None)
            state = replace(
                state,
                failed=state.failed + (1 if result == Delivery.FAILED else 0),
                last_result=result,
                last_error=attempt.error,
            )
        status = _replace_sink(status, state)
        counted.append((attempt.sink, state.type, result.value))
    kept: list[OutboxEntry] = []
    for key in order:
        entry = outbox.get(key)
        if entry is None:
            continue
        if entry.sink not in kinds:  # the sink was removed from the spec
            counted.append((entry.sink, "", Delivery.DROPPED.value))
            continue
        kept.append(entry)
    configured = tuple(s for s in status.sinks if s.name in kinds)
    return replace(status, outbox=tuple(kept), sinks=configured), counted


def refresh_notices(
    status: AlertingStatus,
    opened: Notice,
    sinks: Sequence[SinkSpec],
    now: dt.datetime,
) -> list[tuple[SinkSpec, Notice]]:
    """The Alertmanager re-sends due for the open incident ``opened`` describes.

    Alertmanager resolves an alert nobody re-sent (at its endsAt, or resolve_timeout when
    none was given); an open incident is re-sent to each Alertmanager sink when its last
    accepted send is older than the sink's ``resendSeconds`` and nothing of the incident is
    queued for it still.
    """
    due: list[tuple[SinkSpec, Notice]] = []
    for sink in sinks:
        if sink.type != "alertmanager" or not severity_reaches(opened.severity, sink.min_severity):
            continue
        if any(e.sink == sink.name and e.incident == opened.incident for e in status.outbox):
            continue
        state = status.sink(sink.name, sink.type)
        if state.firing_incident != opened.incident:
            continue  # its opened notice was never accepted: nothing to keep alive
        last = _parse(state.last_firing_at)
        if last is not None and (now - last).total_seconds() < sink.resend_seconds:
            continue
        notice = replace(
            opened,
            id=f"{opened.incident}-refresh-{now.astimezone(dt.UTC):%Y%m%d-%H%M%S}",
            event=NoticeEvent.REFRESH.value,
            time=format_time(now),
        )
        due.append((sink, notice))
    return due
