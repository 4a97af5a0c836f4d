"""The monitor's status machine, spelled out: phases, condition types, reasons.

Pure helpers that build ``status`` fragments; the handlers write them with one patch.
Conditions follow the Kubernetes API conventions: ``lastTransitionTime`` changes only
when ``status`` flips, and every condition carries the generation it was computed for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    """The one-word verdict shown by ``kubectl get mm``."""

    PENDING = "Pending"  # valid, no monitoring run has completed yet
    HEALTHY = "Healthy"  # last run: no drift verdict, all SLOs met
    DRIFTED = "Drifted"  # last run: the data set drifted
    BREACHED = "Breached"  # last run: at least one SLO breached
    DEGRADED = "Degraded"  # the last run could not gather what it needed, or failed
    NO_DATA = "NoData"  # the last run measured nothing: no drift verdict, no SLO with data
    INVALID = "Invalid"  # the spec or what it references cannot be acted upon


class ConditionType(StrEnum):
    READY = "Ready"  # the monitor is configured and its runs are scheduled
    DRIFT_DETECTED = "DriftDetected"
    SLO_BREACHED = "SLOBreached"
    REMEDIATED = "Remediated"
    DEGRADED = "Degraded"
    ANOMALOUS = "Anomalous"  # a spec.anomalies series is outside its seasonal band
    PERFORMANCE_DEGRADED = "PerformanceDegraded"  # spec.performance below its floor
    CONCEPT_DRIFT = "ConceptDrift"  # realized performance outside the estimate's interval


class Reason(StrEnum):
    """Machine-readable reasons (CamelCase, as Kubernetes conventions ask)."""

    CONFIGURED = "Configured"
    INVALID_SPEC = "InvalidSpec"
    TARGET_NOT_FOUND = "TargetNotFound"
    SERVICE_NOT_FOUND = "ServiceNotFound"
    REFERENCE_NOT_FOUND = "ReferenceNotFound"
    SECRET_NOT_FOUND = "SecretNotFound"
    CONFIG_MAP_NOT_FOUND = "ConfigMapNotFound"  # e.g. spec.prometheus.tlsConfig.ca
    LOOKUP_FAILED = "LookupFailed"
    # spec.actions.retrain.jobTemplate asks for more than a tenant may (core/pod_policy.py)
    RETRAIN_TEMPLATE_REFUSED = "RetrainTemplateRefused"
    # spec.schedule.mode dask without the dask extra installed (docs/sources.md)
    ENGINE_NOT_INSTALLED = "EngineNotInstalled"
    # spec.schedule.dask.cluster without dask-kubernetes' DaskJob API or the rights on it
    ENGINE_UNAVAILABLE = "EngineUnavailable"
    # Degraded: a run raised instead of reporting (core/verdict.py, failed_run)
    RUN_FAILED = "RunFailed"
    # PerformanceDegraded / ConceptDrift (core/verdict.py, performance_conditions)
    ESTIMATED_PERFORMANCE_DROPPED = "EstimatedPerformanceDropped"
    REALIZED_PERFORMANCE_DROPPED = "RealizedPerformanceDropped"
    PERFORMANCE_MET = "PerformanceMet"
    CONCEPT_DRIFT = "ConceptDrift"
    ESTIMATE_HOLDS = "EstimateHolds"


CONDITION_STATUSES = ("True", "False", "Unknown")


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str

    def __post_init__(self) -> None:
        if self.status not in CONDITION_STATUSES:
            raise ValueError(f"condition status must be one of {CONDITION_STATUSES}")


def format_time(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with second precision, as the API server stores times."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    existing: Sequence[Mapping[str, Any]] | None,
    updates: Iterable[Condition],
    *,
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Apply ``updates`` to ``existing`` conditions, keeping order and transition times.

    Conditions not named in ``updates`` are kept unchanged.
    """
    result: dict[str, dict[str, Any]] = {
        str(c["type"]): dict(c) for c in (existing or []) if "type" in c
    }
    for cond in updates:
        old = result.get(cond.type)
        changed = old is None or old.get("status") != cond.status
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": (
                format_time(now)
                if changed or old is None
                else old.get("lastTransitionTime", format_time(now))
            ),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        result[cond.type] = entry
    return list(result.values())


def find_condition(
    conditions: Sequence[Mapping[str, Any]] | None, type_: str
) -> Mapping[str, Any] | None:
    for cond in conditions or []:
        if cond.get("type") == type_:
            return cond
    return None


def replacing(old: Any, new: Any) -> Any:
    """``new`` as a JSON merge patch that *replaces* ``old`` (RFC 7386 merges objects).

    A merge patch keeps every key it does not mention, so a key dropped from a nested
    object must be sent as ``null`` to go away.
    """
    if not isinstance(new, Mapping) or not isinstance(old, Mapping):
        return new
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        patch[key] = replacing(old.get(key), value)
    return patch
