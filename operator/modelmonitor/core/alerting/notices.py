"""Notices from the incident's record: opened, an action's result, resolved (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from modelmonitor.core.alerting.records import (
    MAX_MEASUREMENTS,
    Notice,
    NoticeEvent,
    cap,
    incident_severity,
)
from modelmonitor.core.incident import ActionRequest, ActionResult, Incident


def _number(value: Any) -> float | str | None:
    """A JSON-safe measured value: a finite number, "+Inf"/"-Inf", or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return round(float(value), 6)
    if value in ("+Inf", "-Inf"):
        return str(value)
    return None


def measurements(status_patch: Mapping[str, Any], drift_share: float) -> tuple[dict[str, Any], ...]:
    """The run's measured values against their thresholds, from the verdict's status patch:
    every SLO (latency in ms against its limit, good events in % against the objective) and
    the data set's drift share against ``spec.drift.driftShare``; at most 10, breaches first.
    """
    found: list[dict[str, Any]] = []
    for slo in status_patch.get("slos") or []:
        if not isinstance(slo, Mapping):
            continue
        latency = slo.get("kind") == "latency"
        threshold = slo.get("threshold") if latency else slo.get("objective")
        found.append(
            {
                "name": cap(str(slo.get("name") or ""), 63),
                "kind": "latency" if latency else "errorRatio",
                "value": _number(slo.get("value")),
                "threshold": _number(threshold),
                "unit": "ms" if latency else "%",
                "met": slo.get("met") if isinstance(slo.get("met"), bool) else None,
            }
        )
    drift = status_patch.get("drift")
    if isinstance(drift, Mapping) and drift.get("status") == "ok":
        share = _number(drift.get("share"))
        found.append(
            {
                "name": "dataset-drift",
                "kind": "drift",
                "value": share,
                "threshold": _number(drift_share),
                "unit": "share",
                "met": not (isinstance(share, float) and share >= drift_share),
            }
        )
    found.sort(key=lambda m: m["met"] is not False)  # breaches first, stable otherwise
    return tuple(found[:MAX_MEASUREMENTS])


def opened(
    incident: Incident,
    *,
    namespace: str,
    monitor: str,
    found: Sequence[Mapping[str, Any]],
    time: str,
    valid_seconds: int,
) -> Notice:
    """The incident was confirmed (Suspect -> Breached or Remediating)."""
    return Notice(
        id=f"{incident.id}-opened",
        event=NoticeEvent.OPENED.value,
        incident=incident.id,
        severity=incident_severity(incident.triggers),
        summary=cap(f"{namespace}/{monitor}: {incident.reason or 'breached'}"),
        triggers=incident.triggers,
        measurements=tuple(dict(m) for m in found),
        started_at=incident.breached_at or incident.started_at or time,
        time=time,
        valid_seconds=valid_seconds,
    )


def action_result(
    incident: Incident,
    request: ActionRequest,
    result: ActionResult,
    *,
    time: str,
    valid_seconds: int,
    found: Sequence[Mapping[str, Any]] = (),
) -> Notice:
    """An action of the incident has a result (succeeded, failed, skipped, dry run...)."""
    return Notice(
        id=f"{request.id}-result",
        event=NoticeEvent.ACTION.value,
        incident=request.incident,
        severity=incident_severity(incident.triggers or tuple(request.trigger.split(","))),
        summary=cap(
            f"{request.namespace}/{request.monitor}: {request.action} {result.outcome.value}"
            f" ({result.reason}): {result.message}"
        ),
        triggers=incident.triggers,
        measurements=tuple(dict(m) for m in found),
        action={
            "type": request.action,
            "id": request.id,
            "result": result.outcome.value,
            "reason": result.reason,
            "message": cap(result.message),
            "dryRun": request.dry_run,
        },
        started_at=incident.breached_at or incident.started_at or time,
        time=time,
        valid_seconds=valid_seconds,
    )


def resolved(
    incident: Incident,
    *,
    namespace: str,
    monitor: str,
    found: Sequence[Mapping[str, Any]],
    time: str,
) -> Notice:
    """The incident closed: the monitor was healthy for enough runs in a row."""
    return Notice(
        id=f"{incident.id}-resolved",
        event=NoticeEvent.RESOLVED.value,
        incident=incident.id,
        severity=incident_severity(incident.triggers),
        summary=cap(
            f"{namespace}/{monitor}: resolved, healthy for {incident.healthy_runs} runs in a row"
        ),
        triggers=incident.triggers,
        measurements=tuple(dict(m) for m in found),
        started_at=incident.breached_at or incident.started_at or time,
        time=time,
    )
