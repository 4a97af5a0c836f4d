"""Job mode, the I/O part: run a monitoring run as a Kubernetes Job and read its Report.

Implements the run loop's ``Runner`` protocol, so the loop does not care where a run
happens. Survives operator restarts: a Job still running for the monitor is adopted
(waited for) instead of starting another one; a finished one not yet read is read.

The runner holds one of the operator's run slots only to find or create the Job and to
read its report, never while the Job runs: waiting for a Job costs a poll per second,
not a slot. The wait ends at the run's deadline (``spec.schedule.runTimeout``); the Job
is then deleted and the run reported as RunTimedOut.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelmonitor.adapters.kube import KubeClient
from modelmonitor.core.jobs import (
    REPORT_KEY,
    RUN_LABEL,
    JobOutcome,
    JobSettings,
    build_job,
    job_outcome,
    report_configmap_name,
    run_id_for,
)
from modelmonitor.core.report import RUN_TIMED_OUT, DriftSummary, Problem, Report
from modelmonitor.core.scheduling import parse_time
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.engine.slots import RunSlots

log = logging.getLogger(__name__)

GRACE_SECONDS = 60.0  # beyond activeDeadlineSeconds before the operator gives up itself


@dataclass
class JobRunner:
    kube: KubeClient
    settings: JobSettings
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    poll_seconds: float = 1.0
    slots: RunSlots | None = None  # None: take no slot (tests, the job pod)

    async def run(
        self, namespace: str, name: str, spec: MonitorSpec, status: Mapping[str, Any]
    ) -> Report:
        started = self.clock()
        t0 = time.perf_counter()
        try:
            async with self._slot(namespace):
                job = await self._find_or_create(namespace, name, spec, status, started)
            outcome = await self._wait(namespace, job, spec, t0)  # holds no slot
            reading = outcome.state == "succeeded"  # only then is there a report to GET
            async with self._slot(namespace) if reading else contextlib.nullcontext():
                report = await self._read(
                    namespace, job, outcome, started, time.perf_counter() - t0
                )
        except Exception as exc:  # the API failed us: report it, never crash the loop
            log.exception("job-mode run of %s/%s failed", namespace, name)
            return _failed(
                started, time.perf_counter() - t0, "JobFailed", f"{type(exc).__name__}: {exc}"
            )
        await asyncio.to_thread(self.kube.delete_job, namespace, job["metadata"]["name"])
        return report

    def _slot(self, namespace: str) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext() if self.slots is None else self.slots.hold(namespace)

    async def _find_or_create(
        self,
        namespace: str,
        name: str,
        spec: MonitorSpec,
        status: Mapping[str, Any],
        started: dt.datetime,
    ) -> dict[str, Any]:
        jobs = await asyncio.to_thread(self.kube.list_jobs, namespace, {RUN_LABEL: name})
        last_run = parse_time((status.get("lastRun") or {}).get("time"))
        pending = []
        for job in jobs:
            created = parse_time(job["metadata"].get("creationTimestamp"))
            unread = last_run is None or (created is not None and created > last_run)
            if job_outcome(job).state == "running" or unread:
                pending.append(job)
            else:  # finished and already reported: clean up
                await asyncio.to_thread(self.kube.delete_job, namespace, job["metadata"]["name"])
        if pending:
            pending.sort(key=lambda j: j["metadata"].get("creationTimestamp", ""))
            log.info("adopting Job %s of %s/%s", pending[-1]["metadata"]["name"], namespace, name)
            return pending[-1]
        monitor = await asyncio.to_thread(self.kube.get_monitor, namespace, name)
        if monitor is None:
            raise RuntimeError("the monitor is gone")
        manifest = build_job(
            monitor=monitor,
            run_id=run_id_for(monitor["metadata"]["uid"], started.timestamp()),
            settings=self.settings,
            resources=spec.schedule.job_resources or None,
            # Kubernetes stops the pod no later than the operator stops waiting for it
            active_deadline_seconds=min(
                spec.schedule.job_active_deadline_seconds,
                max(1, math.ceil(spec.schedule.run_timeout_seconds)),
            ),
            reference_claim=(
                spec.reference.claim_name
                if spec.reference is not None and spec.reference.source == "pvc"
                else None
            ),
            window_claim=(
                spec.partitions.claim_name
                if spec.partitions is not None and spec.partitions.object_storage is None
                else None
            ),
        )
        return await asyncio.to_thread(self.kube.create_job, namespace, manifest)

    async def _wait(
        self, namespace: str, job: dict[str, Any], spec: MonitorSpec, t0: float
    ) -> JobOutcome:
        name = job["metadata"]["name"]
        created = parse_time(job["metadata"].get("creationTimestamp")) or self.clock()
        limit = spec.schedule.job_active_deadline_seconds + GRACE_SECONDS
        deadline = spec.schedule.run_timeout_seconds
        while True:
            if time.perf_counter() - t0 >= deadline:
                return JobOutcome(
                    "failed",
                    RUN_TIMED_OUT,
                    f"Job {name} still running at spec.schedule.runTimeout ({deadline:g}s); "
                    "deleted",
                )
            current = await asyncio.to_thread(self.kube.get_job, namespace, name)
            if current is None:
                return JobOutcome("failed", "JobDeleted", f"Job {name} was deleted")
            outcome = job_outcome(current)
            if outcome.state != "running":
                return outcome
            if (self.clock() - created).total_seconds() > limit:
                return JobOutcome(
                    "failed", "JobStuck", f"Job {name} still running after {limit:.0f}s"
                )
            left = deadline - (time.perf_counter() - t0)
            await asyncio.sleep(max(0.0, min(self.poll_seconds, left)))

    async def _read(
        self,
        namespace: str,
        job: dict[str, Any],
        outcome: JobOutcome,
        started: dt.datetime,
        elapsed: float,
    ) -> Report:
        name = job["metadata"]["name"]
        if outcome.reason == RUN_TIMED_OUT:
            return _failed(started, elapsed, RUN_TIMED_OUT, outcome.message)
        if outcome.state == "failed":
            detail = f"Job {name} failed: {outcome.reason}"
            if outcome.message:
                detail += f" ({outcome.message})"
            return _failed(started, elapsed, "JobFailed", detail)
        cm = await asyncio.to_thread(
            self.kube.get, "ConfigMap", namespace, report_configmap_name(name)
        )
        payload = ((cm or {}).get("data") or {}).get(REPORT_KEY)
        if payload is None:
            return _failed(started, elapsed, "JobFailed", f"Job {name} finished without a report")
        try:
            report = Report.from_dict(json.loads(payload))
        except (ValueError, KeyError, TypeError) as exc:
            return _failed(
                started, elapsed, "JobFailed", f"Job {name} wrote an unreadable report: {exc}"
            )
        return report


def _failed(started: dt.datetime, elapsed: float, reason: str, message: str) -> Report:
    return Report(
        started=started,
        duration_seconds=elapsed,
        mode="job",
        samples=0,
        drift=DriftSummary("unavailable"),
        problems=(Problem(reason, message),),
    )
