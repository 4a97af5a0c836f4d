"""Turn a run's :class:`~modelmonitor.core.report.Report` into status, conditions and Events.

Pure: the caller passes the old status and "now", and writes the returned patch. Rules:

* a condition changes only on evidence: no data (``InsufficientData``) makes it
  ``Unknown``; an unavailable source (Prometheus down, endpoint unreachable) leaves the
  verdict it could not re-check as it was ("without flipping the verdict");
* Events are returned only for conditions whose status or reason changed, never once per
  run;
* messages state the measured value against the threshold.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelmonitor.core.report import Report
from modelmonitor.core.status import (
    CONDITION_STATUSES,
    Condition,
    ConditionType,
    Phase,
    Reason,
    find_condition,
    format_time,
    merge_conditions,
    replacing,
)

TOP_FEATURES = 10
MAX_MESSAGE = 1024
MAX_SLO_ENTRIES = 20
MAX_ANOMALY_ENTRIES = 10


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str
    # Set on Events promised once per incident or action (core/events.py): the id they
    # announce. Such an Event is posted under a name derived from it, never twice.
    key: str = ""


@dataclass(frozen=True)
class Verdict:
    """A run's verdict: the status patch to write, and the same facts typed for the policy."""

    phase: Phase
    status_patch: dict[str, Any]
    events: tuple[Event, ...]
    conditions: tuple[Condition, ...]  # the conditions this run set
    current: tuple[Condition, ...]  # every condition after this run: set, or kept as it was
    slos: Mapping[str, bool | None]  # per SLO: met, breached, unknown (the last known if down)
    finished: dt.datetime  # when the run finished (status.lastRun.time)

    def conditions_with(
        self, updates: Sequence[Condition], *, generation: int | None, now: dt.datetime
    ) -> list[dict[str, Any]]:
        """``status.conditions`` of this verdict with ``updates`` applied as well."""
        return merge_conditions(
            self.status_patch["conditions"], updates, generation=generation, now=now
        )


def _cap(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def drift_condition(report: Report, previous: Mapping[str, Any] | None) -> Condition | None:
    drift = report.drift
    if drift.status == "unavailable":
        return None  # keep what the last good run said
    if drift.status == "disabled":
        return Condition(ConditionType.DRIFT_DETECTED, "False", "Disabled", "drift is disabled")
    if drift.status == "insufficient_data":
        return Condition(
            ConditionType.DRIFT_DETECTED,
            "Unknown",
            "InsufficientData",
            _cap(drift.message or "too few samples for a drift verdict"),
        )
    head = f"{drift.drifted_features}/{drift.total_features} features drifted"
    top = drift.top_drifted(TOP_FEATURES)
    detail = ", ".join(f.describe() for f in top)
    more = drift.drifted_features - len(top)
    if more > 0:
        detail += f", and {more} more"
    share = f"share {drift.share:.2f} {'>=' if drift.drifted else '<'} {drift.drift_share:g}"
    message = f"{head} ({share})" + (f": {detail}" if detail else "")
    if drift.drifted:
        return Condition(ConditionType.DRIFT_DETECTED, "True", "DriftDetected", _cap(message))
    return Condition(ConditionType.DRIFT_DETECTED, "False", "NoDrift", _cap(message))


def slo_condition(
    report: Report, old_slos: Sequence[Mapping[str, Any]] | None
) -> tuple[Condition | None, dict[str, bool | None]]:
    """The SLOBreached condition, and each SLO's effective state (last known when no data)."""
    if not report.slos:
        return None, {}
    previous = {str(s.get("name")): s.get("met") for s in old_slos or []}
    unavailable = any(p.reason == "PrometheusUnavailable" for p in report.problems)
    effective: dict[str, bool | None] = {}
    for slo in report.slos:
        met = slo.met
        if met is None and unavailable and previous.get(slo.name) is not None:
            met = previous[slo.name]  # the source is down: keep the last verdict
        effective[slo.name] = met
    breached = [s for s in report.slos if effective[s.name] is False]
    if breached:
        message = "; ".join(s.message for s in breached)
        return (
            Condition(ConditionType.SLO_BREACHED, "True", "SLOBreached", _cap(message)),
            effective,
        )
    if all(v is True for v in effective.values()):
        message = "; ".join(s.message for s in report.slos)
        return Condition(ConditionType.SLO_BREACHED, "False", "SLOsMet", _cap(message)), effective
    unknown = [s for s in report.slos if effective[s.name] is None]
    message = "; ".join(s.message for s in unknown)
    return (
        Condition(ConditionType.SLO_BREACHED, "Unknown", "InsufficientData", _cap(message)),
        effective,
    )


def anomaly_condition(report: Report, previous: Mapping[str, Any] | None) -> Condition | None:
    """The Anomalous condition from the spec.anomalies series of this run.

    True when a series has an open anomaly (its band and value in the message); False
    when at least one series was judged and none is anomalous; Unknown when none could
    be judged yet (warm-up, no data). A series whose Prometheus was unavailable is not
    evidence: when no series was judged and one was unavailable, the condition is kept
    as it was. A monitor without spec.anomalies has no Anomalous condition (one left
    from an earlier spec turns False, NotConfigured).
    """
    outcomes = report.anomalies
    if not outcomes:
        if previous is not None and previous.get("status") != "False":
            return Condition(
                ConditionType.ANOMALOUS, "False", "NotConfigured", "spec.anomalies is empty"
            )
        return None
    anomalous = [o for o in outcomes if o.state == "Anomalous"]
    if anomalous:
        message = "; ".join(o.message for o in anomalous)
        return Condition(ConditionType.ANOMALOUS, "True", "AnomalyDetected", _cap(message))
    judged = [o for o in outcomes if o.state == "Normal"]
    unavailable = any(o.state == "Unavailable" for o in outcomes)
    if unavailable and previous is not None and previous.get("status") == "True":
        return None  # the series that was anomalous may still be: keep saying so
    if judged:
        message = "; ".join(o.message for o in outcomes)
        return Condition(ConditionType.ANOMALOUS, "False", "NoAnomaly", _cap(message))
    if unavailable and previous is not None:
        return None
    message = "; ".join(o.message for o in outcomes)
    return Condition(ConditionType.ANOMALOUS, "Unknown", "InsufficientData", _cap(message))


def performance_conditions(report: Report) -> list[Condition]:
    """PerformanceDegraded (and ConceptDrift when labels allowed the check), or none
    without spec.performance. Bad data is Unknown, never True."""
    perf = report.performance
    if perf is None:
        return []
    status = perf.get("status")
    message = _cap(str(perf.get("message") or ""))
    kind = ConditionType.PERFORMANCE_DEGRADED
    if status == "degraded":
        reason = (
            Reason.REALIZED_PERFORMANCE_DROPPED
            if perf.get("basis") == "realized"
            else Reason.ESTIMATED_PERFORMANCE_DROPPED
        )
        out = [Condition(kind, "True", reason, message)]
    elif status == "ok":
        out = [Condition(kind, "False", Reason.PERFORMANCE_MET, message)]
    else:
        return [Condition(kind, "Unknown", "InsufficientData", message or "no estimate")]
    if perf.get("labelledRows"):
        metrics = ", ".join(str(m) for m in perf.get("conceptDriftMetrics") or [])
        if perf.get("conceptDrift"):
            out.append(
                Condition(
                    ConditionType.CONCEPT_DRIFT,
                    "True",
                    Reason.CONCEPT_DRIFT,
                    _cap(f"realized {metrics} outside the estimate's interval: {message}"),
                )
            )
        else:
            out.append(
                Condition(
                    ConditionType.CONCEPT_DRIFT,
                    "False",
                    Reason.ESTIMATE_HOLDS,
                    "realized performance within the estimate's intervals",
                )
            )
    return out


def degraded_condition(report: Report) -> Condition:
    if not report.problems:
        return Condition(
            ConditionType.DEGRADED, "False", "SourcesAvailable", "all sources answered"
        )
    message = "; ".join(f"{p.reason}: {p.message}" for p in report.problems)
    return Condition(ConditionType.DEGRADED, "True", report.problems[0].reason, _cap(message))


def slo_summary(report: Report, effective: Mapping[str, bool | None]) -> str:
    if not report.slos:
        return "-"
    breached = [s.name for s in report.slos if effective.get(s.name) is False]
    if breached:
        return _cap("breached: " + ",".join(breached), 63)
    met = sum(1 for v in effective.values() if v is True)
    return f"{met}/{len(report.slos)}"


def decide(
    report: Report,
    old_status: Mapping[str, Any] | None,
    *,
    generation: int | None,
    now: dt.datetime,
) -> Verdict:
    old = old_status or {}
    old_conditions = old.get("conditions") or []
    updates: list[Condition] = []
    drift_cond = drift_condition(
        report, find_condition(old_conditions, ConditionType.DRIFT_DETECTED)
    )
    if drift_cond is not None:
        updates.append(drift_cond)
    slo_cond, effective = slo_condition(report, old.get("slos"))
    if slo_cond is not None:
        updates.append(slo_cond)
    anomaly_cond = anomaly_condition(
        report, find_condition(old_conditions, ConditionType.ANOMALOUS)
    )
    if anomaly_cond is not None:
        updates.append(anomaly_cond)
    updates.extend(performance_conditions(report))
    updates.append(degraded_condition(report))

    conditions = merge_conditions(old_conditions, updates, generation=generation, now=now)
    phase = _phase(conditions, report)
    events = tuple(_transitions(old_conditions, updates))

    drift = report.drift
    drift_status: dict[str, Any] = {
        "summary": drift.summary,
        "status": drift.status,
        "drifted": drift.drifted_features,
        "total": drift.total_features,
        "share": round(drift.share, 4),
        "features": [f.to_dict() for f in drift.top_drifted(TOP_FEATURES)],
    }
    if drift.status == "unavailable" and isinstance(old.get("drift"), Mapping):
        drift_status = dict(old["drift"])  # keep the last good run's numbers
    patch: dict[str, Any] = {
        "phase": phase.value,
        "conditions": conditions,
        "lastRun": {
            "time": format_time(report.finished),
            "durationSeconds": round(report.duration_seconds, 3),
            "samples": report.samples,
            "mode": report.mode,
        },
        "drift": drift_status,
        "sloSummary": slo_summary(report, effective),
        "slos": [
            {**s.to_dict(), "name": s.name, "met": effective.get(s.name), "message": s.message}
            for s in report.slos[:MAX_SLO_ENTRIES]
        ],
    }
    if report.anomalies:
        patch["anomalies"] = [a.to_dict() for a in report.anomalies[:MAX_ANOMALY_ENTRIES]]
    elif old.get("anomalies"):
        patch["anomalies"] = None  # spec.anomalies was emptied: drop the stale entries
    if report.performance is not None:
        # replaced, not merged: a key this run lacks (realized, breached, a feed's
        # message) must not linger from an earlier run
        patch["performance"] = replacing(old.get("performance"), dict(report.performance))
    history = report.details.get("sloHistory")
    if isinstance(history, Mapping):
        patch["sloHistory"] = dict(history)
    if generation is not None:
        patch["observedGeneration"] = generation
    current = tuple(_typed(c) for c in conditions if c.get("status") in CONDITION_STATUSES)
    return Verdict(
        phase,
        patch,
        events,
        tuple(updates),
        current,
        {s.name: effective.get(s.name) for s in report.slos[:MAX_SLO_ENTRIES]},
        report.finished,
    )


MAX_FAILURE_MESSAGE = 200
_URL_USERINFO = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/\s@]*@")
_URL_QUERY = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s?#]*)[?#]\S*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def describe_failure(error: BaseException) -> str:
    """``ValueError: first line of the message``: short, one line, no URL credentials.

    What an unexpected exception says is not meant for status: only its type and the
    start of its first line are kept, with URLs cut to scheme, host and path.
    """
    lines = str(error).strip().splitlines()
    text = _CONTROL.sub(" ", lines[0] if lines else "")
    text = _URL_QUERY.sub(r"\1", _URL_USERINFO.sub(r"\1", text)).strip()
    kind = type(error).__name__
    return _cap(f"{kind}: {text}" if text else kind, MAX_FAILURE_MESSAGE)


def failed_run(
    error: BaseException,
    old_status: Mapping[str, Any] | None,
    *,
    generation: int | None,
    started: dt.datetime,
    now: dt.datetime,
    mode: str,
) -> Verdict:
    """The verdict of a run that raised instead of producing a Report.

    Nothing was measured, so nothing a previous run concluded is re-checked: the
    drift and SLO conditions stay as they were, the phase turns ``Degraded`` with
    ``Degraded=True`` (``RunFailed``) saying why, and the policy is never asked (a
    failed run is no evidence; the caller plans no action on it).
    """
    old = old_status or {}
    old_conditions = old.get("conditions") or []
    failed = Condition(
        ConditionType.DEGRADED,
        "True",
        Reason.RUN_FAILED,
        f"the run failed: {describe_failure(error)}; the last verdict is kept",
    )
    conditions = merge_conditions(old_conditions, [failed], generation=generation, now=now)
    patch: dict[str, Any] = {
        "phase": Phase.DEGRADED.value,
        "conditions": conditions,
        "lastRun": {
            "time": format_time(now),
            "durationSeconds": round(max(0.0, (now - started).total_seconds()), 3),
            "samples": 0,
            "mode": mode,
        },
    }
    if generation is not None:
        patch["observedGeneration"] = generation
    current = tuple(_typed(c) for c in conditions if c.get("status") in CONDITION_STATUSES)
    return Verdict(
        Phase.DEGRADED,
        patch,
        tuple(_transitions(old_conditions, [failed])),
        (failed,),
        current,
        {},
        now,
    )


def _typed(condition: Mapping[str, Any]) -> Condition:
    return Condition(
        str(condition.get("type")),
        str(condition.get("status")),
        str(condition.get("reason") or ""),
        str(condition.get("message") or ""),
    )


def _phase(conditions: Sequence[Mapping[str, Any]], report: Report) -> Phase:
    def is_true(kind: str) -> bool:
        cond = find_condition(conditions, kind)
        return cond is not None and cond.get("status") == "True"

    if is_true(ConditionType.SLO_BREACHED) or is_true(ConditionType.PERFORMANCE_DEGRADED):
        return Phase.BREACHED
    if is_true(ConditionType.DRIFT_DETECTED):
        return Phase.DRIFTED
    if report.problems:
        return Phase.DEGRADED
    # "Healthy" needs a measurement: drift evaluated, or an SLO with data. Drift turned
    # off measures nothing, and an SLO without data is never a pass.
    measured_drift = report.drift.status == "ok"
    measured_slo = any(s.met is not None for s in report.slos)
    perf = report.performance
    measured_perf = perf is not None and perf.get("status") == "ok"
    # an anomaly series judged (Normal or Anomalous) is a measurement too; Anomalous
    # itself never changes the phase (docs/anomalies.md: a signal, not a verdict)
    measured_anomaly = any(a.state in ("Normal", "Anomalous") for a in report.anomalies)
    if not measured_drift and not measured_slo and not measured_perf and not measured_anomaly:
        return Phase.NO_DATA
    return Phase.HEALTHY


_WARNING_WHEN_TRUE = {
    ConditionType.DRIFT_DETECTED,
    ConditionType.SLO_BREACHED,
    ConditionType.DEGRADED,
    ConditionType.ANOMALOUS,
    ConditionType.PERFORMANCE_DEGRADED,
    ConditionType.CONCEPT_DRIFT,
}


def _transitions(
    old_conditions: Sequence[Mapping[str, Any]], updates: Sequence[Condition]
) -> list[Event]:
    events = []
    for cond in updates:
        old = find_condition(old_conditions, cond.type)
        if (
            old is not None
            and old.get("status") == cond.status
            and old.get("reason") == cond.reason
        ):
            continue
        if old is None and cond.status != "True":
            continue  # a first "all good" is not news
        warning = cond.type in _WARNING_WHEN_TRUE and cond.status == "True"
        events.append(Event("Warning" if warning else "Normal", cond.reason, cond.message))
    return events
