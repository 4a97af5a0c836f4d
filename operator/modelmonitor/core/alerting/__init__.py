"""Incident notifications: what each sink hears of an incident, and the durable outbox.

An incident (``status.incident``, :mod:`modelmonitor.core.incident`) has one id from the
moment it opens. Every sink of ``spec.alerting.sinks`` hears its whole confirmed life as
:class:`~.records.Notice` s: ``opened`` (Suspect -> confirmed), one ``action`` per action
result, ``refresh`` (Alertmanager only: an open alert is re-sent so it does not expire)
and ``resolved``. Each notice is written to ``status.alerting.outbox`` *before* it is sent
(:mod:`.outbox`), so an operator restarted in between sends it after the restart; the
payloads are built per sink type by :mod:`.payloads`. Pure: no I/O, time passed in.
"""

from modelmonitor.core.alerting.outbox import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    MAX_ATTEMPTS,
    OUTBOX_CAP,
    Attempt,
    apply_attempts,
    backoff_seconds,
    due_entries,
    enqueue,
    next_due,
    refresh_notices,
)
from modelmonitor.core.alerting.records import (
    AlertingStatus,
    Notice,
    NoticeEvent,
    OutboxEntry,
    SinkState,
    incident_severity,
    severity_reaches,
)

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_CAP_SECONDS",
    "MAX_ATTEMPTS",
    "OUTBOX_CAP",
    "AlertingStatus",
    "Attempt",
    "Notice",
    "NoticeEvent",
    "OutboxEntry",
    "SinkState",
    "apply_attempts",
    "backoff_seconds",
    "due_entries",
    "enqueue",
    "incident_severity",
    "next_due",
    "refresh_notices",
    "severity_reaches",
]
