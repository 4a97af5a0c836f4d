"""Every kind of status the operator writes, built by its own code, and a pruning check.

The CRD's status schema is structural: the API server drops ("prunes") every field it
does not list, and refuses a write whose value has the wrong type. A status part the
schema forgot would vanish silently, so the unit suite builds each status part with the
code that writes it (verdicts, incidents, action results, healthy revisions) and checks
it against the schema with :func:`schema_problems`; the e2e suite round-trips the same
samples through the real API server.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from modelmonitor.actions.kserve import execute_canary_rollback
from modelmonitor.actions.rollback import execute_rollback, record_healthy
from modelmonitor.actions.scale import execute_scale, execute_scale_back
from modelmonitor.core import alerting, records
from modelmonitor.core.alerting import AlertingStatus, notices
from modelmonitor.core.anomaly import SeasonalOptions, detect
from modelmonitor.core.anomaly.outcome import AnomalyOutcome, summarize
from modelmonitor.core.incident import (
    ActionRequest,
    ActionResult,
    Incident,
    IncidentState,
    Outcome,
    PendingAction,
    Restore,
)
from modelmonitor.core.jobs import ACTIVE_RUN, active_run_record
from modelmonitor.core.policy import history_entry, with_history
from modelmonitor.core.report import DriftSummary, FeatureSummary, Problem, Report
from modelmonitor.core.slo.budget import EventCounts, required_windows
from modelmonitor.core.slo.evaluation import evaluate_error_ratio, evaluate_latency
from modelmonitor.core.spec import PerformanceSpec, SinkSpec
from modelmonitor.core.stats.performance import classification_performance
from modelmonitor.core.stats.performance.monitor import insufficient
from modelmonitor.core.stats.performance.monitor import summarize as judge_performance
from modelmonitor.core.status import Condition, format_time, merge_conditions
from modelmonitor.core.verdict import decide, failed_run
from tests.unit.actions import test_gitops, test_kserve, test_rollback, test_scale
from tests.unit.actions.fake_api import FakeApi

CRD = Path(__file__).resolve().parents[2] / "crds" / "modelmonitor.io_modelmonitors.yaml"
NOW = dt.datetime(2026, 11, 26, 15, 45, 1, tzinfo=dt.UTC)
DAY = 86400.0
HOUR = 3600.0


def crd_schema() -> dict[str, Any]:
    """The ModelMonitor's openAPIV3Schema, from crds/ (the source of truth)."""
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def status_schema() -> dict[str, Any]:
    return crd_schema()["properties"]["status"]  # type: ignore[no-any-return]


# -- the check ---------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _type_problem(value: Any, schema: Mapping[str, Any]) -> str | None:
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, (int, str)) and not isinstance(value, bool)
        return None if ok else "is neither an integer nor a string"
    kind = schema.get("type")
    if kind is None:
        return None  # x-kubernetes-preserve-unknown-fields without a type: any value
    if isinstance(value, bool) and kind != "boolean":
        return f"is a boolean, the schema says {kind}"
    if not isinstance(value, _TYPES[kind]):
        return f"is {type(value).__name__}, the schema says {kind}"
    if isinstance(value, float) and not math.isfinite(value):
        return "is not finite (JSON has no infinity)"
    return None


def schema_problems(value: Any, schema: Mapping[str, Any], path: str = "status") -> list[str]:
    """How the API server would change or refuse ``value``; empty when it keeps it as is.

    Reports a field the schema does not list (pruned; also where unknown fields are
    preserved, so that every field the operator writes is documented), a null the schema
    does not allow (dropped), a wrong type or a value outside an enum (refused). An
    object whose unknown fields are preserved and that lists no properties is opaque by
    design (``sloHistory``): its content is not checked.
    """
    if value is None:
        return [] if schema.get("nullable") else [f"{path} is null, the schema is not nullable"]
    problem = _type_problem(value, schema)
    if problem:
        return [f"{path} {problem}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path} {value!r} is not one of {schema['enum']}"]
    out: list[str] = []
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                out.extend(schema_problems(item, props[key], f"{path}.{key}"))
            elif isinstance(extra, Mapping):
                out.extend(schema_problems(item, extra, f"{path}.{key}"))
            elif schema.get("x-kubernetes-preserve-unknown-fields"):
                if props:  # described in part: the rest is undocumented (opaque: fine)
                    out.append(f"{path}.{key} is kept but not described in the schema")
            else:
                out.append(f"{path}.{key} is not in the schema: the API server prunes it")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{path} has more than {schema['maxItems']} items")
        for i, item in enumerate(value):
            out.extend(schema_problems(item, schema["items"], f"{path}[{i}]"))
    return out


def without_nulls(value: Any) -> Any:
    """``value`` without the null members of its objects, at any depth."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return copy.deepcopy(value)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies the operator's status patches.

    Like the API server's implementation, it drops null members of the objects inside
    an array it copies as well (a null there is never stored).
    """
    if not isinstance(patch, Mapping):
        return without_nulls(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# -- the samples -------------------------------------------------------------------------


def _windows(bad: dict[float, float], total: float = 10_000.0) -> dict[float, EventCounts]:
    return {
        w: EventCounts.from_bad(bad.get(w, 0.0) * total, total) for w in required_windows(28 * DAY)
    }


def _slos() -> tuple[Any, ...]:
    burning = evaluate_error_ratio(
        "availability",
        objective=99.9,
        slo_window_seconds=28 * DAY,
        windows=_windows({HOUR: 0.015, 300.0: 0.015}),
    )
    slow = evaluate_latency(
        "p95-latency",
        percentile=95,
        threshold_ms=250,
        value_ms=math.inf,  # more failed requests than the percentile allows
        objective=99,
        slo_window_seconds=28 * DAY,
        windows=_windows({HOUR: 1.0, 300.0: 1.0}),
    )
    quiet = evaluate_error_ratio(
        "errors",
        objective=99,
        slo_window_seconds=7 * DAY,
        windows=dict.fromkeys(required_windows(7 * DAY)),
    )
    fast = evaluate_latency(
        "p99-latency",
        percentile=99,
        threshold_ms=500,
        value_ms=120.0,
        objective=99.5,
        slo_window_seconds=28 * DAY,
    )
    return (burning, slow, quiet, fast)


def _drift() -> DriftSummary:
    features = (
        FeatureSummary("amount", "psi", 0.31, None, 0.25, True),
        FeatureSummary("age", "ks", 0.4, 0.0004, 0.05, True),
        FeatureSummary("country", "chi2", None, 0.2, 0.05, False),
    )
    return DriftSummary("ok", True, 2, 3, 2 / 3, 0.5, features)


def verdict_statuses() -> Iterator[tuple[str, dict[str, Any]]]:
    """What a run writes: drift, SLOs (infinite and missing values too), failed runs."""
    report = Report(
        NOW,
        2.5,
        "inline",
        200,
        _drift(),
        _slos(),
        (Problem("EndpointUnavailable", "connection refused"),),
        details={"sloHistory": {"availability": {"version": 1, "buckets": [[0, 1, 2, 3]]}}},
    )
    first = decide(report, {}, generation=3, now=NOW)
    status = merge_patch({}, first.status_patch)
    yield "a run with drift and SLOs", status
    unavailable = Report(NOW, 0.5, "job", 0, DriftSummary("unavailable"), _slos()[2:])
    later = decide(unavailable, status, generation=3, now=NOW + dt.timedelta(minutes=1))
    yield "a run without data", merge_patch(status, later.status_patch)
    for drift in (DriftSummary("disabled"), DriftSummary("insufficient_data", message="12 rows")):
        alone = decide(Report(NOW, 0.1, "inline", 12, drift), {}, generation=None, now=NOW)
        yield f"a run with drift {drift.status}", merge_patch({}, alone.status_patch)
    failed = failed_run(
        RuntimeError("boom"), status, generation=4, started=NOW, now=NOW, mode="job"
    )
    yield "a failed run", merge_patch(status, failed.status_patch)
    invalid = merge_conditions(
        None, [Condition("Ready", "False", "InvalidSpec", "spec.x: bad")], generation=2, now=NOW
    )
    yield "an invalid spec", {"phase": "Invalid", "conditions": invalid, "observedGeneration": 2}
    payload = {"url": "http://p/v1/<token>", "secretName": "m-payload", "secretKey": "url"}
    yield "a payload-log monitor", {"phase": "Pending", "payloadLog": payload}
    series = Report(NOW, 0.2, "inline", 0, DriftSummary("disabled"), anomalies=anomaly_outcomes())
    yield "anomaly series", merge_patch({}, decide(series, {}, generation=1, now=NOW).status_patch)
    for name, perf in _performance():
        run = decide(
            Report(NOW, 0.2, "inline", 300, _drift(), performance=perf), {}, generation=1, now=NOW
        )
        yield name, merge_patch({}, run.status_patch)


def anomaly_outcomes() -> tuple[AnomalyOutcome, ...]:
    """Every state a spec.anomalies series can be in, the judged ones from real detection
    (an open anomaly; a departure shorter than `for`), so every status field is set."""
    import numpy as np

    t = NOW.timestamp() - np.arange(6 * 288)[::-1] * 300.0
    v = 10 + np.sin(2 * np.pi * t / DAY)
    opts = SeasonalOptions(for_seconds=900)
    spiked = v.copy()
    spiked[-6:] += 5
    pending = v.copy()
    pending[-2:] += 5
    now = NOW.timestamp()
    return (
        summarize("latency", detect(t, spiked, opts), now=now, stale_after=900, for_seconds=900),
        summarize("traffic", detect(t, pending, opts), now=now, stale_after=900, for_seconds=900),
        summarize("fresh", detect(t[-10:], v[-10:], opts), now=now, stale_after=900, for_seconds=9),
        AnomalyOutcome("errors", "Unavailable", "errors: no data: Prometheus unavailable"),
    )


def _performance() -> Iterator[tuple[str, dict[str, Any]]]:
    """status.performance as the operator writes it: realized, concept drift, breaches, a
    calibration warning; and insufficient data."""
    rng = np.random.default_rng(3)
    p_ref = rng.random(600)
    y_ref = (rng.random(600) < p_ref**2).astype(int)  # badly calibrated: a warning
    p_cur = rng.random(300)
    y_cur = (rng.random(300) < 1 - p_cur).astype(int)  # the scores' meaning flipped
    report = classification_performance(y_ref, p_ref, p_cur, current_y=y_cur)
    spec = PerformanceSpec("y", ("p",), minimum={"accuracy": 0.9}, max_drop={"f1": 0.01})
    yield (
        "a run with performance below its floor",
        dict(judge_performance(report, spec).to_status()),
    )
    yield "a run without probabilities", dict(insufficient("no probabilities").to_status())


def _healthy() -> list[dict[str, Any]]:
    seen = [{"revision": "5", "podTemplateHash": "6d9f7c8b4", "images": ["iris:v1"]}]
    healthy: list[dict[str, Any]] = []
    for observed in [*seen, {"revision": "6", "podTemplateHash": "7b5c9d6f8", "images": []}]:
        healthy = record_healthy(healthy, observed, format_time(NOW))
    return healthy


def full_incident() -> Incident:
    """An incident with every field set, as a scale step and a pending action leave it."""
    restore = Restore(kind="Deployment", name="iris", path="replicas", original=1, applied=3)
    pending = (
        PendingAction(
            id="iris-20261126-154501-rollback-1",
            action="rollback",
            incident="iris-20261126-154501",
            trigger="slo,drift",
            reason="p95 latency 612 ms > 300 ms",
            dry_run=True,
            phase="Breached",
            healthy_revisions=tuple(_healthy()),
            restore=None,
            created=format_time(NOW),
        ),
        PendingAction(
            id="iris-20261126-154501-scale-back-1",
            action="scale-back",
            incident="iris-20261126-154501",
            restore=restore.to_dict(),
            created=format_time(NOW),
        ),
    )
    return Incident(
        id="iris-20261126-154501",
        state=IncidentState.REMEDIATING,
        triggers=("drift", "slo"),
        reason="p95 latency 612 ms > 300 ms",
        started_at=format_time(NOW),
        breached_at=format_time(NOW),
        closed_at=format_time(NOW),
        recovered_at=format_time(NOW),
        updated_at=format_time(NOW),
        breaches=3,
        healthy_runs=0,
        step_breaches=1,
        scale_steps=2,
        acted={"rollback": Outcome.SUCCEEDED, "scale": "pending"},
        suppressed={"notify": "Cooldown"},
        pending=pending,
        restore=restore,
        restore_failures=1,
        last_action_at=format_time(NOW),
        last_action_incident="iris-20261126-154501",
        recent_actions=(format_time(NOW),),
    )


def unset_keys(record: records.Record) -> set[str]:
    """JSON keys the record declares and ``record`` does not write (coverage of a sample)."""
    written = record.to_dict()
    declared = {k.name for _, k in records._keys(type(record))}
    return declared - written.keys()


def _results() -> Iterator[tuple[ActionRequest | None, str, ActionResult]]:
    """Real results of every executor that runs without a network, and the others' shapes."""
    rollback = test_rollback.request()
    yield (
        rollback,
        "rollback",
        execute_rollback(test_rollback.cluster(), test_rollback.SPEC, rollback),
    )
    api = FakeApi()
    api.put(test_scale.DEPLOY, test_scale.deployment(1))
    up = test_scale.request("inc-1-scale-1")
    spec = test_scale.monitor_spec()
    yield up, "scale", execute_scale(api, spec, up)
    yield up, "scale", execute_scale(api, spec, up)  # already applied
    restore = {"kind": "Deployment", "name": "model", "field": "replicas"}
    back = test_scale.request(
        "inc-1-scale-back-1", restore={**restore, "original": 1, "applied": 2}
    )
    yield back, "scale-back", execute_scale_back(api, spec, back)
    api.put(test_scale.DEPLOY, test_scale.deployment(5))  # someone else scaled since
    yield back, "scale-back", execute_scale_back(api, spec, back)
    api.put(test_kserve.PATH, test_kserve.isvc(20))
    canary = test_kserve.request()
    yield canary, "rollback", execute_canary_rollback(api, test_kserve.SPEC, canary)
    notify = test_rollback.request(id="inc-1-notify-1", action="notify")
    failed = {"format": "slack", "attempts": 3, "status": None, "error": "ConnectionRefusedError"}
    yield notify, "notify", ActionResult(Outcome.FAILED, "NotifyFailed", "down", failed)
    posted = {"format": "json", "attempts": 1, "status": 200}
    yield notify, "notify", ActionResult(Outcome.SUCCEEDED, "Notified", "posted", posted)
    retrain = test_rollback.request(id="inc-1-retrain-1", action="retrain", dry_run=True)
    job = {"job": "iris-retrain-1"}
    yield retrain, "retrain", ActionResult(Outcome.DRY_RUN, "DryRun", "would create", job)
    yield None, "rollback", ActionResult(Outcome.SUPPRESSED, "Cooldown", "cooling down")
    yield rollback, "rollback", test_gitops.argo_paused_result()


def remediation_statuses() -> Iterator[tuple[str, dict[str, Any]]]:
    """What remediation writes: the incident, lastAction, actionHistory, healthy revisions."""
    incident = full_incident()
    yield "a full incident", {"incident": incident.to_dict()}
    yield "no incident yet", {"incident": Incident().to_dict()}
    entries = [
        history_entry(
            request,
            action,
            result.outcome,
            result.reason,
            result.message,
            NOW,
            incident="iris-1",
            details=result.details,
        )
        for request, action, result in _results()
    ]
    status: dict[str, Any] = {}
    for entry in entries:
        status = merge_patch(status, with_history(status, [entry]))
        yield f"lastAction {entry['type']} {entry['result']}", dict(status)
    yield "healthy revisions", {"healthyRevisions": _healthy()}
    yield from test_gitops.gitops_statuses()


def full_alerting() -> AlertingStatus:
    """``status.alerting`` with every field set: a failed and a delivered Alertmanager
    notice, an action result waiting for its retry, with measurements from a verdict."""
    sinks = (
        SinkSpec(name="am", type="alertmanager", url="http://am.example:9093"),
        SinkSpec(name="hook", type="webhook", secret=None),
    )
    incident = replace(full_incident(), state=IncidentState.REMEDIATING, triggers=("slo",))
    found = notices.measurements(
        {
            "slos": [
                {"name": "p95", "kind": "latency", "value": 412.0, "threshold": 250, "met": False},
                {"name": "avail", "kind": "errorRatio", "value": math.inf, "objective": 99.5},
            ],
            "drift": {"status": "ok", "share": 0.25},
        },
        0.5,
    )
    stamp = format_time(NOW)
    opened = notices.opened(
        incident, namespace="ml", monitor="iris", found=found, time=stamp, valid_seconds=240
    )
    request = test_rollback.request()
    result = ActionResult(Outcome.SUCCEEDED, "RolledBack", "rolled back 3 -> 1")
    acted = notices.action_result(
        incident, request, result, time=stamp, valid_seconds=240, found=found
    )
    status = alerting.enqueue(AlertingStatus(), [opened, acted], sinks)
    status, _ = alerting.apply_attempts(
        status, [alerting.Attempt(opened.id, "am", ok=True)], NOW, sinks
    )
    later = NOW + dt.timedelta(seconds=30)
    status, _ = alerting.apply_attempts(
        status,
        [alerting.Attempt(acted.id, "hook", ok=False, retryable=True, error="HTTP 503")],
        later,
        sinks,
    )
    return status


def alerting_statuses() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "incident notifications", {"alerting": full_alerting().to_dict()}


def job_run_statuses() -> Iterator[tuple[str, dict[str, Any]]]:
    """What job mode records when it creates a run object (the only one it adopts)."""
    job = {"metadata": {"name": "m-run-0a1b2c3d4e", "uid": "6f1c0e1e-5b0a-4c1e-9d1b-3c2a1b0a9f8e"}}
    yield "job-mode run", {ACTIVE_RUN: active_run_record(job, "Job")}


def every_status() -> list[tuple[str, dict[str, Any]]]:
    return [
        *verdict_statuses(),
        *remediation_statuses(),
        *alerting_statuses(),
        *job_run_statuses(),
    ]
