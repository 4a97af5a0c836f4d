"""Events posted once: names derived from the monitor's UID and what they announce."""

from __future__ import annotations

import datetime as dt

from modelmonitor.core.events import build_event, once_name
from modelmonitor.core.names import subdomain_problem

NOW = dt.datetime(2026, 6, 1, 9, 0, 0, 123456, tzinfo=dt.UTC)
MONITOR = {"metadata": {"name": "fraud", "namespace": "ml", "uid": "uid-1"}}


def test_the_same_announcement_gets_the_same_name_and_others_do_not() -> None:
    name = once_name("fraud", "uid-1", "ActionPlanned/fraud-20260601-090000-rollback-1")
    assert name == once_name("fraud", "uid-1", "ActionPlanned/fraud-20260601-090000-rollback-1")
    assert name.startswith("fraud.")
    others = {
        once_name("fraud", "uid-2", "ActionPlanned/fraud-20260601-090000-rollback-1"),
        once_name("fraud", "uid-1", "ActionPlanned/fraud-20260601-090000-rollback-2"),
        once_name("fraud", "uid-1", "IncidentConfirmed/fraud-20260601-090000"),
    }
    assert name not in others
    assert len(others) == 3


def test_names_stay_valid_for_the_longest_monitor_names() -> None:
    for monitor in ("a", "x" * 253, "a-" * 126 + "b", "a." * 120 + "b"):
        name = once_name(monitor, "uid", "k")
        assert subdomain_problem(name) is None, (monitor, name)


def test_the_event_is_about_the_monitor() -> None:
    event = build_event(
        monitor=MONITOR,
        key="IncidentConfirmed/fraud-1",
        type_="Warning",
        reason="IncidentConfirmed",
        message="m" * 5000,
        now=NOW,
    )
    assert event["metadata"]["name"] == once_name("fraud", "uid-1", "IncidentConfirmed/fraud-1")
    assert event["metadata"]["namespace"] == "ml"
    assert event["involvedObject"] == {
        "apiVersion": "modelmonitor.io/v1alpha1",
        "kind": "ModelMonitor",
        "name": "fraud",
        "namespace": "ml",
        "uid": "uid-1",
    }
    assert (event["type"], event["reason"]) == ("Warning", "IncidentConfirmed")
    assert len(event["message"]) == 1024
    assert event["firstTimestamp"] == "2026-06-01T09:00:00Z"
    assert event["eventTime"] == "2026-06-01T09:00:00.123456Z"
