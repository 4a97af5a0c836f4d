"""What an action takes and returns: the records remediation keeps about an incident.

An action is planned by :mod:`modelmonitor.core.policy` (pure) as an :class:`ActionRequest`
whose ``id`` is deterministic and is written to the monitor's status *before* the action
runs; its executor (:mod:`modelmonitor.actions`) returns an :class:`ActionResult`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """The ``result`` label of ``modelmonitor_actions_total``."""

    SUCCEEDED = "succeeded"  # the cluster was changed (or already was, by this request)
    DRY_RUN = "dryrun"  # planned and reported, nothing changed
    SKIPPED = "skipped"  # refused for a stated reason (paused Deployment, no healthy revision)
    FAILED = "failed"  # tried and failed (API error, webhook down after retries)
    SUPPRESSED = "suppressed"  # not attempted: cooldown, rate limit, pause (policy)


@dataclass(frozen=True)
class ActionRequest:
    """One planned action; everything an executor needs besides the spec and the API."""

    id: str  # deterministic, e.g. "fraud-20261126-154501-rollback-1"
    action: str  # rollback | scale | scale-back | notify | retrain
    namespace: str
    monitor: str
    monitor_uid: str
    incident: str  # incident id
    trigger: str  # "slo", "drift" or "slo,drift"
    reason: str  # why, for people: the verdict's message
    dry_run: bool = False
    phase: str = ""  # the monitor's phase when planned
    # rollback: the revisions the monitor saw healthy, newest first:
    # [{"revision": "6", "podTemplateHash": "5d4f...", "lastSeen": RFC3339}]
    healthy_revisions: tuple[Mapping[str, Any], ...] = ()
    # scale-back: the "restore" mapping a scale result returned
    restore: Mapping[str, Any] | None = None
    created: str = ""  # RFC 3339 time of the decision

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "incident": self.incident,
            "trigger": self.trigger,
            "reason": self.reason,
            "dryRun": self.dry_run,
            "phase": self.phase,
            "healthyRevisions": [dict(r) for r in self.healthy_revisions],
            "restore": dict(self.restore) if self.restore is not None else None,
            "created": self.created,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, namespace: str, monitor: str, monitor_uid: str
    ) -> ActionRequest:
        restore = data.get("restore")
        return cls(
            id=str(data.get("id") or ""),
            action=str(data.get("action") or ""),
            namespace=namespace,
            monitor=monitor,
            monitor_uid=monitor_uid,
            incident=str(data.get("incident") or ""),
            trigger=str(data.get("trigger") or ""),
            reason=str(data.get("reason") or ""),
            dry_run=bool(data.get("dryRun", False)),
            phase=str(data.get("phase") or ""),
            healthy_revisions=tuple(
                dict(r) for r in data.get("healthyRevisions") or [] if isinstance(r, Mapping)
            ),
            restore=dict(restore) if isinstance(restore, Mapping) else None,
            created=str(data.get("created") or ""),
        )


@dataclass(frozen=True)
class ActionResult:
    outcome: Outcome
    reason: str  # CamelCase, e.g. RolledBack, NoHealthyRevision, DeploymentPaused
    message: str  # one line for people; never contains a secret
    details: Mapping[str, Any] = field(default_factory=dict)
