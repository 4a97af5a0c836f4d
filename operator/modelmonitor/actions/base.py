"""What every action executor shares: its signature and the retry on a write conflict.

Executors (one module per action) turn an :class:`~modelmonitor.core.incident.ActionRequest`
into an :class:`~modelmonitor.core.incident.ActionResult` through a
:class:`~modelmonitor.core.cluster.ClusterApi`; they must be idempotent: running the same
request twice (an operator killed after acting but before recording the result) must not
act twice. Each executor marks what it changed with
:data:`~modelmonitor.core.cluster.ACTION_ANNOTATION` = the request id, or derives an
object name from it, and checks that mark first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from modelmonitor.core.cluster import ApiError, ClusterApi
from modelmonitor.core.incident import ActionRequest, ActionResult, Outcome
from modelmonitor.core.spec import MonitorSpec


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
