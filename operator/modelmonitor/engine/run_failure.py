"""A run that raised: reported as ``Degraded`` (``RunFailed``), never acted upon.

The runner turns bad data and unreachable sources into a Report's problems; anything
else it raises (a bug, an input no check foresaw) would otherwise leave status as the
last good run wrote it, ``Ready=True`` and a stale phase, while no run succeeds. The
run loop hands such an error here: one conflict-safe status write of
:func:`~modelmonitor.core.verdict.failed_run`, an Event when the Degraded condition
changes, the run counted in the metrics; the policy is never asked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from modelmonitor.core.report import DriftSummary, Problem, Report
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.core.status import ConditionType, Reason, find_condition
from modelmonitor.core.verdict import Event, Verdict, describe_failure, failed_run

log = logging.getLogger(__name__)


class StatusWriter(Protocol):
    """Writes a monitor's status through a read-modify-write ``compute``."""

    def update_monitor_status(
        self,
        namespace: str,
        name: str,
        compute: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> tuple[dict[str, Any], dict[str, Any]] | None: ...


class FailureDeps(Protocol):
    """What reporting a failure needs of the run loop's dependencies."""

    @property
    def writer(self) -> StatusWriter: ...

    @property
    def post_event(self) -> Callable[[Event], None]: ...

    @property
    def on_verdict(self) -> Callable[[Report, Verdict, float], None]: ...

    @property
    def clock(self) -> Callable[[], dt.datetime]: ...


def _ready(status: Mapping[str, Any]) -> bool:
    cond = find_condition(status.get("conditions"), ConditionType.READY)
    return cond is not None and cond.get("status") == "True"


async def report_failure(
    namespace: str,
    name: str,
    spec: MonitorSpec,
    error: Exception,
    started: dt.datetime,
    lag: float,
    deps: FailureDeps,
) -> None:
    """Write the failed run's verdict; a failure to write it is logged, never raised."""
    holder: dict[str, Verdict] = {}
    mode: Literal["inline", "job"] = "job" if spec.schedule.in_job else "inline"

    def compute(obj: dict[str, Any]) -> dict[str, Any] | None:
        status = obj.get("status") or {}
        if not _ready(status):
            return None  # became invalid meanwhile: the spec handler owns status now
        gen = (obj.get("metadata") or {}).get("generation")
        verdict = failed_run(
            error,
            status,
            generation=gen if isinstance(gen, int) else None,
            started=started,
            now=deps.clock(),
            mode=mode,
        )
        holder["verdict"] = verdict
        return verdict.status_patch

    try:
        written = await asyncio.to_thread(
            deps.writer.update_monitor_status, namespace, name, compute
        )
    except Exception:  # the loop must go on; the next run reports again
        log.exception("%s/%s: cannot report the failed run", namespace, name)
        return
    verdict = holder.get("verdict")
    if written is None or verdict is None:
        return
    for event in verdict.events:
        deps.post_event(event)
    # What the metrics see: a run of this duration that measured nothing.
    stub = Report(
        started,
        float(verdict.status_patch["lastRun"]["durationSeconds"]),
        mode,
        0,
        DriftSummary("unavailable"),
        problems=(Problem(Reason.RUN_FAILED, describe_failure(error)),),
    )
    deps.on_verdict(stub, verdict, lag)
