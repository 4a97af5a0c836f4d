"""The outbox state machine (core/alerting/outbox.py): pure, time passed in.

Each test reads status as the API server would hand it back (``to_dict`` ->
``from_dict``), which is what an operator restarted in the middle sees.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from modelmonitor.core.alerting import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    MAX_ATTEMPTS,
    AlertingStatus,
    Attempt,
    Notice,
    apply_attempts,
    backoff_seconds,
    due_entries,
    enqueue,
    next_due,
    refresh_notices,
)
from modelmonitor.core.spec import SinkSpec

NOW = dt.datetime(2026, 11, 26, 15, 57, 25, tzinfo=dt.UTC)
INC = "iris-20261126-155725"
AM = SinkSpec(name="am", type="alertmanager", url="http://am:9093", resend_seconds=60)
PD = SinkSpec(name="pd", type="pagerduty")
HOOK = SinkSpec(name="hook", type="webhook")
PAGER_ONLY = SinkSpec(name="pager", type="pagerduty", min_severity="critical")


def notice(event: str, severity: str = "critical", nid: str | None = None) -> Notice:
    return Notice(
        id=nid or f"{INC}-{event}",
        event=event,
        incident=INC,
        severity=severity,
        summary=f"ml/iris: {event}",
        triggers=("slo",),
        started_at="2026-11-26T15:57:25Z",
        time="2026-11-26T15:57:25Z",
        valid_seconds=240,
    )


def reread(status: AlertingStatus) -> AlertingStatus:
    """Status as a restarted operator reads it back from the API server."""
    return AlertingStatus.from_dict(status.to_dict())


def later(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def test_backoff_doubles_from_five_seconds_and_is_capped() -> None:
    assert [backoff_seconds(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert backoff_seconds(0) == 0
    assert backoff_seconds(1000) == BACKOFF_CAP_SECONDS
    assert BACKOFF_BASE_SECONDS == 5


def test_a_notice_is_queued_once_per_sink_and_never_twice() -> None:
    sinks = [AM, PD, HOOK]
    status = enqueue(AlertingStatus(), [notice("opened")], sinks)
    assert [(e.id, e.sink) for e in status.outbox] == [
        (f"{INC}-opened", "am"),
        (f"{INC}-opened", "pd"),
        (f"{INC}-opened", "hook"),
    ]
    # the same decision recomputed (a conflict, a restart before the write): no duplicate
    again = enqueue(reread(status), [notice("opened")], sinks)
    assert again == reread(status)
    assert [s.name for s in status.sinks] == ["am", "pd", "hook"]


def test_min_severity_filters_per_sink() -> None:
    status = enqueue(AlertingStatus(), [notice("opened", severity="warning")], [HOOK, PAGER_ONLY])
    assert [e.sink for e in status.outbox] == ["hook"]


def test_a_restart_between_send_and_record_sends_the_same_ids_again() -> None:
    status = reread(enqueue(AlertingStatus(), [notice("opened")], [AM, PD]))
    first = [(e.id, e.sink) for e in due_entries(status, NOW)]
    # the operator sends, then dies before recording: the restarted one reads the same
    restarted = reread(status)
    assert [(e.id, e.sink) for e in due_entries(restarted, NOW)] == first
    done, counted = apply_attempts(
        restarted, [Attempt(i, s, ok=True) for i, s in first], NOW, [AM, PD]
    )
    assert done.outbox == ()
    assert counted == [("am", "alertmanager", "delivered"), ("pd", "pagerduty", "delivered")]
    assert [s.delivered for s in done.sinks] == [1, 1]


def test_a_resolve_queued_while_the_trigger_is_pending_replaces_it_for_state_sinks() -> None:
    sinks = [AM, PD, HOOK]
    status = enqueue(AlertingStatus(), [notice("opened")], sinks)
    status, _ = apply_attempts(  # every sink is down
        status,
        [
            Attempt(f"{INC}-opened", s.name, ok=False, retryable=True, error="HTTP 503")
            for s in sinks
        ],
        NOW,
        sinks,
    )
    status = enqueue(reread(status), [notice("resolved")], sinks)
    by_sink = {s.name: [e.event for e in status.outbox if e.sink == s.name] for s in sinks}
    # Alertmanager and PagerDuty need only the last state: a trigger sent after its
    # resolve would re-open the alert. The webhook hears both, in order.
    assert by_sink == {"am": ["resolved"], "pd": ["resolved"], "hook": ["opened", "resolved"]}
    # the resolve to the state sinks goes out now; the webhook's waits behind its trigger
    due = [(e.sink, e.event) for e in due_entries(status, NOW)]
    assert due == [("am", "resolved"), ("pd", "resolved")]
    due = [(e.sink, e.event) for e in due_entries(status, later(5))]
    assert due == [("hook", "opened"), ("am", "resolved"), ("pd", "resolved"), ("hook", "resolved")]


def test_per_sink_order_holds_while_the_head_waits_for_its_retry() -> None:
    status = enqueue(AlertingStatus(), [notice("opened"), notice("resolved")], [HOOK])
    status, counted = apply_attempts(
        status,
        [Attempt(f"{INC}-opened", "hook", ok=False, retryable=True, error="HTTP 502")],
        NOW,
        [HOOK],
    )
    assert counted == [("hook", "webhook", "retrying")]
    head = status.outbox[0]
    assert (head.attempts, head.next_attempt_at, head.last_error) == (
        1,
        "2026-11-26T15:57:30Z",
        "HTTP 502",
    )
    assert due_entries(status, later(4)) == []  # the resolve does not overtake
    assert next_due(status) == later(5)
    assert [e.event for e in due_entries(status, later(5))] == ["opened", "resolved"]


def test_retries_follow_the_backoff_then_give_up() -> None:
    status = enqueue(AlertingStatus(), [notice("opened")], [HOOK])
    when = NOW
    waits = []
    for _n in range(1, MAX_ATTEMPTS):
        status, counted = apply_attempts(
            reread(status),
            [Attempt(f"{INC}-opened", "hook", ok=False, retryable=True, error="TimeoutError")],
            when,
            [HOOK],
        )
        assert counted[0][2] == "retrying"
        due = next_due(status)
        assert due is not None
        waits.append((due - when).total_seconds())
        when = due
    assert waits[:7] == [5, 10, 20, 40, 80, 160, 300]
    status, counted = apply_attempts(
        status, [Attempt(f"{INC}-opened", "hook", ok=False, retryable=True)], when, [HOOK]
    )
    assert counted == [("hook", "webhook", "failed")]
    assert status.outbox == ()
    assert status.sinks[0].failed == 1


def test_a_refusal_is_not_retried() -> None:
    status = enqueue(AlertingStatus(), [notice("opened")], [PD])
    status, counted = apply_attempts(
        status,
        [Attempt(f"{INC}-opened", "pd", ok=False, retryable=False, error="HTTP 400")],
        NOW,
        [PD],
    )
    assert counted == [("pd", "pagerduty", "failed")]
    assert status.outbox == ()
    assert (status.sinks[0].last_result, status.sinks[0].last_error) == ("failed", "HTTP 400")


def test_the_outbox_is_bounded_and_resolves_go_last() -> None:
    status = enqueue(AlertingStatus(), [notice("resolved")], [HOOK])
    refreshes = [notice("refresh", nid=f"{INC}-refresh-{i}") for i in range(4)]
    actions = [notice("action", nid=f"{INC}-rollback-{i}-result") for i in range(4)]
    status = enqueue(status, [*refreshes, *actions], [HOOK], cap=5)
    kept = [e.id for e in status.outbox]
    assert kept[0] == f"{INC}-resolved"
    assert len(kept) == 5
    assert all("refresh" not in k for k in kept)
    assert status.sinks[0].dropped == 4
    assert status.sinks[0].last_result == "dropped"


def test_entries_of_a_removed_sink_are_dropped() -> None:
    status = enqueue(AlertingStatus(), [notice("opened")], [AM, HOOK])
    status, counted = apply_attempts(status, [], NOW, [AM])
    assert [e.sink for e in status.outbox] == ["am"]
    assert counted == [("hook", "", "dropped")]
    assert [s.name for s in status.sinks] == ["am"]


def test_an_attempt_for_an_entry_replaced_meanwhile_only_counts() -> None:
    status = enqueue(AlertingStatus(), [notice("opened")], [AM])
    status = enqueue(status, [notice("resolved")], [AM])  # replaced the opened one
    status, counted = apply_attempts(status, [Attempt(f"{INC}-opened", "am", ok=True)], NOW, [AM])
    assert [e.event for e in status.outbox] == ["resolved"]
    assert counted == [("am", "alertmanager", "delivered")]


def test_alertmanager_is_re_sent_while_open_and_not_after_resolve() -> None:
    opened = notice("opened")
    status = enqueue(AlertingStatus(), [opened], [AM, HOOK])
    assert refresh_notices(status, opened, [AM, HOOK], NOW) == []  # queued still
    status, _ = apply_attempts(
        status,
        [Attempt(opened.id, "am", ok=True), Attempt(opened.id, "hook", ok=True)],
        NOW,
        [AM, HOOK],
    )
    assert status.sinks[0].firing_incident == INC
    assert refresh_notices(reread(status), opened, [AM, HOOK], later(59)) == []
    ((sink, refresh),) = refresh_notices(reread(status), opened, [AM, HOOK], later(60))
    assert sink == AM
    assert refresh.event == "refresh"
    assert refresh.id == f"{INC}-refresh-20261126-155825"
    status = enqueue(status, [refresh], [sink])
    status, _ = apply_attempts(status, [Attempt(refresh.id, "am", ok=True)], later(61), [AM, HOOK])
    assert status.sinks[0].last_firing_at == "2026-11-26T15:58:26Z"
    status = enqueue(status, [notice("resolved")], [AM, HOOK])
    status, _ = apply_attempts(
        status, [Attempt(f"{INC}-resolved", "am", ok=True)], later(70), [AM, HOOK]
    )
    assert status.sinks[0].firing_incident is None
    assert refresh_notices(status, opened, [AM], later(600)) == []


def test_an_alert_never_accepted_is_not_refreshed() -> None:
    opened = notice("opened")
    status = enqueue(AlertingStatus(), [opened], [AM])
    status, _ = apply_attempts(
        status, [Attempt(opened.id, "am", ok=False, retryable=False, error="HTTP 400")], NOW, [AM]
    )
    assert refresh_notices(status, opened, [AM], later(3600)) == []


@pytest.mark.parametrize("raw", [{"outbox": "nope"}, {"outbox": [{"id": 3}]}, {"sinks": [1]}])
def test_status_this_version_cannot_read_is_kept_and_does_not_crash(raw: dict[str, object]) -> None:
    status = AlertingStatus.from_dict(raw)
    assert status.to_dict() == raw or isinstance(status.to_dict(), dict)
    enqueue(status, [notice("opened")], [AM])


def test_an_unreadable_next_attempt_time_means_due_now() -> None:
    status = enqueue(AlertingStatus(), [notice("opened")], [HOOK])
    broken = AlertingStatus(outbox=(replace(status.outbox[0], next_attempt_at="garbage"),))
    assert [e.sink for e in due_entries(broken, NOW)] == ["hook"]
