"""What every remediation action takes and returns, and the API surface it may use.

An action is planned by :mod:`modelmonitor.policy` (pure) as an :class:`ActionRequest`
whose ``id`` is deterministic and is written to the monitor's status *before* the action
runs. Executors (one module per action) turn a request into an :class:`ActionResult`
through a :class:`ClusterApi`; they must be idempotent: running the same request twice
(an operator killed after acting but before recording the result) must not act twice.
Each executor marks what it changed with :data:`ACTION_ANNOTATION` = the request id,
or derives an object name from it, and checks that mark first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from modelmonitor.spec import MonitorSpec

ACTION_ANNOTATION = "modelmonitor.io/action-id"
MONITOR_LABEL = "modelmonitor.io/monitor"
INCIDENT_LABEL = "modelmonitor.io/incident"

PatchType = Literal["merge", "json", "strategic"]


class Outcome(StrEnum):
    """The ``result`` label of ``modelmonitor_actions_total``."""

    SUCCEEDED = "succeeded"  # the cluster was changed (or already was, by this request)
    DRY_RUN = "dryrun"  # planned and reported, nothing changed
    SKIPPED = "skipped"  # refused for a stated reason (paused Deployment, no healthy revision)
    FAILED = "failed"  # tried and failed (API error, webhook down after retries)
    SUPPRESSED = "suppressed"  # not attempted: cooldown, rate limit, pause (policy)


class ApiError(Exception):
    """A Kubernetes API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


class ClusterApi(Protocol):
    """Path-level access to the API server (paths like ``/apis/apps/v1/namespaces/...``)."""

    def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None on 404; ApiError otherwise."""

    def list(self, path: str, label_selector: str = "") -> list[dict[str, Any]]:
        """The ``items`` of a collection, optionally filtered by a label selector."""

    def patch(self, path: str, body: Any, *, patch_type: PatchType = "merge") -> dict[str, Any]:
        """Patch and return the object; ApiError(409/422) when a ``test`` op fails etc."""

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create in the collection ``path``; ApiError(409) when the name exists."""

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """One decoded key of a Secret, or None when the Secret or key is absent."""


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


class Executor(Protocol):
    def __call__(
        self, api: ClusterApi, spec: MonitorSpec, request: ActionRequest
    ) -> ActionResult: ...


# Every status write of a controller (pods starting, as they do right after a rollback
# or a scale step) bumps the resourceVersion a guarded patch was planned against.
CONFLICT_ATTEMPTS = 4


def retry_on_conflict(attempt: Callable[[], ActionResult], failure_reason: str) -> ActionResult:
    """Run ``attempt`` (read, plan, patch) again after a 409, planning on what the other
    writer wrote, up to :data:`CONFLICT_ATTEMPTS` times. A 404 means the target went away
    while acting (SKIPPED); other API errors fail with ``failure_reason``."""
    for tries in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return attempt()
        except ApiError as exc:
            if exc.status == 409 and tries < CONFLICT_ATTEMPTS:
                continue
            if exc.status == 404:
                return ActionResult(Outcome.SKIPPED, "TargetNotFound", f"gone while acting: {exc}")
            return ActionResult(Outcome.FAILED, failure_reason, str(exc))
    raise AssertionError("unreachable")  # pragma: no cover
