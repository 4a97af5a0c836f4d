"""Decide a monitor's configuration status: valid and ready, or invalid and why.

Pure glue between the spec parser (:mod:`modelmonitor.core.spec`), the reference checks
(:mod:`.references`) and the status types (:mod:`modelmonitor.core.status`): the handlers
feed it the object and an object lookup, and write the returned status patch in one go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from modelmonitor.adapters import dask_engine
from modelmonitor.core.cluster import ObjectLookup
from modelmonitor.core.pod_policy import DEFAULT_SERVICE_ACCOUNT, describe, job_template_violations
from modelmonitor.core.spec import MonitorSpec, SpecError, parse_spec
from modelmonitor.core.status import (
    Condition,
    ConditionType,
    Phase,
    Reason,
    find_condition,
    merge_conditions,
)
from modelmonitor.engine.references import check_references

# Phases that a monitoring run sets; a spec change keeps them until the next run.
RUN_PHASES = frozenset(
    {Phase.HEALTHY, Phase.DRIFTED, Phase.BREACHED, Phase.DEGRADED, Phase.NO_DATA}
)
# Reasons that a later change elsewhere in the cluster can cure (re-checked on a timer).
RECHECK_REASONS = frozenset(
    {
        Reason.TARGET_NOT_FOUND,
        Reason.SERVICE_NOT_FOUND,
        Reason.REFERENCE_NOT_FOUND,
        Reason.SECRET_NOT_FOUND,
        Reason.LOOKUP_FAILED,
    }
)


@dataclass(frozen=True)
class ConfigurationResult:
    spec: MonitorSpec | None
    phase: Phase
    ready: Condition
    status_patch: dict[str, Any]

    @property
    def valid(self) -> bool:
        return self.spec is not None and self.phase != Phase.INVALID


def evaluate(
    body: Mapping[str, Any],
    lookup: ObjectLookup,
    *,
    now: dt.datetime,
    retrain_service_accounts: Collection[str] = (DEFAULT_SERVICE_ACCOUNT,),
    dask_installed: bool | None = None,
) -> ConfigurationResult:
    """Validate ``body`` (a ModelMonitor) and compute the status patch to write.

    A retrain jobTemplate is held to :mod:`modelmonitor.core.pod_policy` with the
    operator's allowed ``retrain_service_accounts``: refused, the monitor is invalid
    before any Job could be created. Mode dask needs the engine installed
    (``dask_installed``; None: look whether it is).
    """
    metadata = body.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    generation = metadata.get("generation")
    status = body.get("status") or {}
    spec: MonitorSpec | None = None
    try:
        spec = parse_spec(body.get("spec") or {})
    except SpecError as exc:
        ready = Condition(ConditionType.READY, "False", Reason.INVALID_SPEC, str(exc))
        return _result(None, Phase.INVALID, ready, status, generation, now)

    template = spec.actions.retrain_job_template
    violations = (
        [] if template is None else job_template_violations(template, retrain_service_accounts)
    )
    if violations:
        ready = Condition(
            ConditionType.READY, "False", Reason.RETRAIN_TEMPLATE_REFUSED, describe(violations)
        )
        return _result(spec, Phase.INVALID, ready, status, generation, now)

    if spec.schedule.mode == "dask" and not (
        dask_installed if dask_installed is not None else dask_engine.available()
    ):
        ready = Condition(
            ConditionType.READY,
            "False",
            Reason.ENGINE_NOT_INSTALLED,
            "spec.schedule.mode 'dask' needs the dask extra (pip install 'modelmonitor[dask]') "
            "in the operator's image, which job pods run; it is not installed",
        )
        return _result(spec, Phase.INVALID, ready, status, generation, now)

    problems = check_references(spec, namespace, lookup)
    if problems:
        message = "; ".join(p.message for p in problems)
        ready = Condition(ConditionType.READY, "False", problems[0].reason, message)
        return _result(spec, Phase.INVALID, ready, status, generation, now)

    target = spec.target
    what = f"{target.kind} {target.name}" if target.kind != "External" else "external endpoint"
    message = (
        f"monitoring {what} every {spec.schedule.interval_seconds:g}s ({spec.schedule.mode} mode)"
    )
    if spec.deprecations:
        # Deprecated fields still work for this API version; say so where people look.
        message += "; " + "; ".join(f"{path} is {note}" for path, note in spec.deprecations)
    ready = Condition(ConditionType.READY, "True", Reason.CONFIGURED, message)
    current = status.get("phase")
    phase = Phase(current) if current in RUN_PHASES else Phase.PENDING
    return _result(spec, phase, ready, status, generation, now)


def needs_recheck(status: Mapping[str, Any] | None) -> bool:
    """True when the monitor is invalid for a reason another object's creation can cure."""
    ready = find_condition((status or {}).get("conditions"), ConditionType.READY)
    return (
        ready is not None
        and ready.get("status") == "False"
        and (ready.get("reason") in {r.value for r in RECHECK_REASONS})
    )


def _result(
    spec: MonitorSpec | None,
    phase: Phase,
    ready: Condition,
    status: Mapping[str, Any],
    generation: Any,
    now: dt.datetime,
) -> ConfigurationResult:
    gen = generation if isinstance(generation, int) else None
    conditions = merge_conditions(status.get("conditions"), [ready], generation=gen, now=now)
    patch: dict[str, Any] = {"phase": phase.value, "conditions": conditions}
    if gen is not None:
        patch["observedGeneration"] = gen
    return ConfigurationResult(spec, phase, ready, patch)
