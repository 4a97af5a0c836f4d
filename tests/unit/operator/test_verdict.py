"""From a run's Report to status: conditions, phase, messages and transition-only Events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from modelmonitor.core.report import DriftSummary, FeatureSummary, Problem, Report
from modelmonitor.core.status import format_time
from modelmonitor.core.verdict import decide

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class SLO:
    name: str
    met: bool | None
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.extra)


def drifted(n: int = 2, total: int = 4) -> DriftSummary:
    feats = (
        FeatureSummary("amount", "psi", 0.31, None, 0.25, True),
        FeatureSummary("age", "ks", 0.4, 0.0004, 0.05, True),
        FeatureSummary("country", "jensenshannon", 0.01, None, 0.1, False),
    )
    return DriftSummary("ok", True, n, total, n / total, 0.5, feats[: n + 1])


def calm() -> DriftSummary:
    return DriftSummary(
        "ok", False, 0, 4, 0.0, 0.5, (FeatureSummary("a", "ks", 0.1, 0.3, 0.05, False),)
    )


def report(
    drift: DriftSummary, slos: tuple[SLO, ...] = (), problems: tuple[Problem, ...] = ()
) -> Report:
    return Report(NOW, 1.5, "inline", 200, drift, slos, problems)


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_drift_message_names_features_against_thresholds() -> None:
    v = decide(report(drifted()), {}, generation=4, now=NOW)
    assert v.phase.value == "Drifted"
    c = cond(v.status_patch, "DriftDetected")
    assert c["status"] == "True"
    assert c["message"].startswith("2/4 features drifted (share 0.50 >= 0.5): ")
    assert "amount (psi 0.31 >= 0.25)" in c["message"]
    assert "age (ks p=0.0004 < 0.05)" in c["message"]
    assert v.status_patch["drift"]["summary"] == "2/4"
    assert v.status_patch["observedGeneration"] == 4
    assert [e.reason for e in v.events] == ["DriftDetected"]
    assert v.events[0].type == "Warning"


def test_events_only_on_transitions() -> None:
    first = decide(report(drifted()), {}, generation=1, now=NOW)
    second = decide(report(drifted()), first.status_patch, generation=1, now=NOW)
    assert second.events == ()
    recovered = decide(report(calm()), second.status_patch, generation=1, now=NOW)
    assert [(e.type, e.reason) for e in recovered.events] == [("Normal", "NoDrift")]
    assert recovered.phase.value == "Healthy"


def test_first_healthy_run_posts_no_event() -> None:
    v = decide(report(calm()), {}, generation=1, now=NOW)
    assert v.phase.value == "Healthy"
    assert v.events == ()


def test_insufficient_data_is_unknown_not_healthy() -> None:
    v = decide(
        report(DriftSummary("insufficient_data", message="12 rows < 30")), {}, generation=1, now=NOW
    )
    c = cond(v.status_patch, "DriftDetected")
    assert (c["status"], c["reason"]) == ("Unknown", "InsufficientData")
    assert v.phase.value == "NoData"  # a run finished: no longer Pending
    assert v.status_patch["drift"]["summary"] == "-"


def test_slo_breach_message_and_summary() -> None:
    slos = (SLO("p95", False, "p95 latency 412 ms > 250 ms over 5m"), SLO("errors", True, "ok"))
    v = decide(report(calm(), slos), {}, generation=1, now=NOW)
    assert v.phase.value == "Breached"
    c = cond(v.status_patch, "SLOBreached")
    assert c["message"] == "p95 latency 412 ms > 250 ms over 5m"
    assert v.status_patch["sloSummary"] == "breached: p95"


def test_prometheus_down_keeps_slo_verdict_and_degrades() -> None:
    breached = decide(
        report(calm(), (SLO("avail", False, "error ratio 5% > 0.5%"),)), {}, generation=1, now=NOW
    )
    down = report(
        calm(), (SLO("avail", None, "no data"),), (Problem("PrometheusUnavailable", "refused"),)
    )
    v = decide(down, breached.status_patch, generation=1, now=NOW)
    assert cond(v.status_patch, "SLOBreached")["status"] == "True"  # not flipped
    assert cond(v.status_patch, "Degraded")["reason"] == "PrometheusUnavailable"
    assert v.phase.value == "Breached"
    assert [e.reason for e in v.events] == ["PrometheusUnavailable"]


def test_no_data_without_outage_is_unknown() -> None:
    v = decide(
        report(calm(), (SLO("avail", None, "no data for the query"),)), {}, generation=1, now=NOW
    )
    assert cond(v.status_patch, "SLOBreached")["status"] == "Unknown"
    assert v.status_patch["sloSummary"] == "0/1"


def test_unavailable_drift_keeps_previous_numbers() -> None:
    first = decide(report(drifted()), {}, generation=1, now=NOW)
    down = report(
        DriftSummary("unavailable"), problems=(Problem("EndpointUnreachable", "refused"),)
    )
    v = decide(down, first.status_patch, generation=1, now=NOW)
    assert v.status_patch["drift"]["summary"] == "2/4"
    assert cond(v.status_patch, "DriftDetected")["status"] == "True"
    assert cond(v.status_patch, "Degraded")["status"] == "True"


def test_the_verdict_carries_what_its_status_patch_says_typed() -> None:
    breached = decide(
        report(calm(), (SLO("avail", False, "error ratio 5% > 0.5%"),)), {}, generation=1, now=NOW
    )
    down = report(
        DriftSummary("unavailable"),
        (SLO("avail", None, "no data"), SLO("p95", True, "fast")),
        (Problem("PrometheusUnavailable", "refused"),),
    )
    old = {**breached.status_patch, "conditions": [*breached.status_patch["conditions"], {}]}
    v = decide(down, old, generation=1, now=NOW)
    patch = v.status_patch
    typed = [(c.type, c.status, c.reason, c.message) for c in v.current]
    assert typed == [
        (c["type"], c["status"], c["reason"], c["message"]) for c in patch["conditions"]
    ]
    assert {c.type for c in v.conditions} == {"SLOBreached", "Degraded"}  # drift: kept
    assert v.slos == {s["name"]: s["met"] for s in patch["slos"]} == {"avail": False, "p95": True}
    assert v.finished == down.finished
    assert patch["lastRun"]["time"] == format_time(v.finished)


def test_report_round_trips_through_json() -> None:
    import json

    r = report(drifted(), (SLO("p95", False, "slow", {"value": 412.0}),), (Problem("X", "y"),))
    back = Report.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.drift == r.drift
    assert back.slos[0].name == "p95"
    assert back.slos[0].met is False
    assert back.slos[0].to_dict()["value"] == 412.0
    assert back.problems == r.problems
    assert back.finished == r.finished


def test_a_monitor_that_measured_nothing_says_no_data_not_healthy() -> None:
    # drift off, the only SLO without data: nothing was measured
    v = decide(
        report(DriftSummary("disabled"), (SLO("avail", None, "no data for the query"),)),
        {},
        generation=1,
        now=NOW,
    )
    assert v.phase.value == "NoData"
    assert cond(v.status_patch, "SLOBreached")["status"] == "Unknown"
    assert cond(v.status_patch, "SLOBreached")["reason"] == "InsufficientData"
    # and as soon as the SLO has data, it is a verdict again
    met = decide(
        report(DriftSummary("disabled"), (SLO("avail", True, "0.1% <= 1%"),)),
        v.status_patch,
        generation=1,
        now=NOW,
    )
    assert met.phase.value == "Healthy"


def test_drift_off_and_no_slo_at_all_is_no_data() -> None:
    v = decide(report(DriftSummary("disabled")), {}, generation=1, now=NOW)
    assert v.phase.value == "NoData"


def test_failed_run_keeps_the_verdict_and_degrades() -> None:
    from modelmonitor.core.verdict import failed_run

    drifted_run = decide(report(drifted()), {}, generation=1, now=NOW)
    later = NOW + dt.timedelta(seconds=30)
    v = failed_run(
        ValueError("bad\x1b[31m value"),
        drifted_run.status_patch,
        generation=2,
        started=later - dt.timedelta(seconds=3),
        now=later,
        mode="inline",
    )
    assert v.phase.value == "Degraded"
    assert v.status_patch["phase"] == "Degraded"
    degraded = cond(v.status_patch, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RunFailed")
    assert (
        degraded["message"]
        == "the run failed: ValueError: bad [31m value; the last verdict is kept"
    )
    assert degraded["observedGeneration"] == 2
    assert cond(v.status_patch, "DriftDetected")["status"] == "True"
    assert v.status_patch["lastRun"] == {
        "time": format_time(later),
        "durationSeconds": 3.0,
        "samples": 0,
        "mode": "inline",
    }
    assert "drift" not in v.status_patch
    assert "slos" not in v.status_patch
    assert [(e.type, e.reason) for e in v.events] == [("Warning", "RunFailed")]
    again = failed_run(
        ValueError("bad"), v.status_patch, generation=2, started=later, now=later, mode="job"
    )
    assert again.events == ()  # no Event per failing run


def test_failure_messages_are_short_and_carry_no_url_secrets() -> None:
    from modelmonitor.core.verdict import MAX_FAILURE_MESSAGE, describe_failure

    text = describe_failure(
        RuntimeError("GET http://bob:hunter2@10.0.0.1/x?sig=abc#frag failed\nbody: secret")
    )
    assert text == "RuntimeError: GET http://10.0.0.1/x failed"
    assert describe_failure(KeyError()) == "KeyError"
    long = describe_failure(ValueError("x" * 5000))
    assert len(long) == MAX_FAILURE_MESSAGE
    assert long.endswith("...")
