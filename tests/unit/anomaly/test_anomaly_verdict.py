"""How spec.anomalies' outcomes become the Anomalous condition, the phase and status."""

from __future__ import annotations

import datetime as dt

from modelmonitor.core.anomaly.outcome import AnomalyOutcome
from modelmonitor.core.report import DriftSummary, Report
from modelmonitor.core.verdict import decide

NOW = dt.datetime(2026, 12, 7, 6, 0, tzinfo=dt.UTC)
NORMAL = AnomalyOutcome("p95", "Normal", "p95: 0.2 within band [0.1, 0.3]", 0.2, 0.1, 0.3, 0.2)
ANOMALOUS = AnomalyOutcome("p95", "Anomalous", "p95: 0.9 outside band [0.1, 0.3] since x")
WARMING = AnomalyOutcome("traffic", "WarmingUp", "traffic: warming up")
DOWN = AnomalyOutcome("p95", "Unavailable", "p95: no data: Prometheus unavailable")


def verdict(*outcomes: AnomalyOutcome, old: dict | None = None):
    report = Report(NOW, 0.1, "inline", 0, DriftSummary("disabled"), anomalies=outcomes)
    return decide(report, old or {}, generation=1, now=NOW)


def anomalous(v) -> tuple[str, str] | None:
    found = [c for c in v.conditions if c.type == "Anomalous"]
    return (found[0].status, found[0].reason) if found else None


def test_states_to_condition_and_phase() -> None:
    assert anomalous(verdict(NORMAL, WARMING)) == ("False", "NoAnomaly")
    assert verdict(NORMAL).phase.value == "Healthy"  # a judged series is a measurement
    assert anomalous(verdict(ANOMALOUS, WARMING)) == ("True", "AnomalyDetected")
    assert verdict(ANOMALOUS).phase.value == "Healthy"  # no phase of its own
    assert anomalous(verdict(WARMING)) == ("Unknown", "InsufficientData")
    assert verdict(WARMING).phase.value == "NoData"
    assert anomalous(verdict()) is None  # never configured: no condition at all


def test_unavailable_keeps_the_last_verdict_and_an_emptied_spec_clears_it() -> None:
    first = verdict(ANOMALOUS)
    old = first.status_patch
    assert anomalous(verdict(DOWN, old=old)) is None  # kept as it was
    assert anomalous(verdict(DOWN, NORMAL.__class__("x", "Normal", "x ok"), old=old)) is None
    cleared = verdict(old=old)
    assert anomalous(cleared) == ("False", "NotConfigured")
    assert cleared.status_patch["anomalies"] is None


def test_events_only_on_change_and_warning_when_anomalous() -> None:
    first = verdict(NORMAL)
    assert first.events == ()  # a first "all good" is not news
    second = verdict(ANOMALOUS, old=first.status_patch)
    assert [(e.type, e.reason) for e in second.events] == [("Warning", "AnomalyDetected")]
    assert "outside band" in second.events[0].message
    third = verdict(ANOMALOUS, old=second.status_patch)
    assert third.events == ()
    back = verdict(NORMAL, old=third.status_patch)
    assert [(e.type, e.reason) for e in back.events] == [("Normal", "NoAnomaly")]


def test_the_report_round_trips_for_job_mode() -> None:
    report = Report(NOW, 0.1, "job", 0, DriftSummary("disabled"), anomalies=(NORMAL, WARMING))
    again = Report.from_dict(report.to_dict())
    assert [a.to_dict() for a in again.anomalies] == [a.to_dict() for a in report.anomalies]
