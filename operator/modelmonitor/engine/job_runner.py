"""Job mode, the I/O part: run a monitoring run as a Kubernetes Job and read its Report.

Implements the run loop's ``Runner`` protocol, so the loop does not care where a run
happens. Survives operator restarts: a Job still running for the monitor is adopted
(waited for) instead of starting another one; a finished one not yet read is read.

What a run is made of is the runner's ``workload`` (:class:`RunWorkload`): a batch/v1
Job here (:class:`BatchJobs`), a dask-kubernetes DaskJob for mode dask's ephemeral
cluster (engine/daskjob_runner.py); finding, adopting, waiting, reading and deleting are
the same for both.

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
from typing import Any, Protocol

from modelmonitor.adapters.kube import KubeClient
from modelmonitor.core.jobs import (
    ACTIVE_RUN,
    REPORT_KEY,
    RUN_ID_LABEL,
    RUN_LABEL,
    JobOutcome,
    JobSettings,
    active_run_record,
    build_job,
    is_recorded_run,
    job_outcome,
    report_configmap_name,
    run_id_for,
)
from modelmonitor.core.report import RUN_TIMED_OUT, DriftSummary, Problem, Report
from modelmonitor.core.report_seal import REPORT_UNVERIFIED, check_report
from modelmonitor.core.scheduling import parse_time
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.engine.slots import RunSlots

log = logging.getLogger(__name__)

GRACE_SECONDS = 60.0  # beyond activeDeadlineSeconds before the operator gives up itself
# Pods listed to find a run's own pod: one per run (backoffLimit 0), the rest is slack
# for look-alikes carrying the run labels, which the uid check then ignores.
MAX_RUN_PODS = 20


class RunWorkload(Protocol):
    """The Kubernetes object one run is (a Job, a DaskJob), and how to read it."""

    kind: str

    def list(self, namespace: str, monitor: str) -> list[dict[str, Any]]: ...

    def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create(self, namespace: str, job: dict[str, Any], spec: MonitorSpec) -> dict[str, Any]:
        """Create the run's object from job mode's Job manifest ``job``."""
        ...

    def delete(self, namespace: str, name: str) -> None: ...

    def outcome(self, obj: Mapping[str, Any]) -> JobOutcome: ...

    def report_configmap(self, name: str) -> str:
        """The name of the ConfigMap the run pod of object ``name`` writes its report to."""
        ...


@dataclass
class BatchJobs:
    """Job mode: a run is a batch/v1 Job."""

    kube: KubeClient
    kind: str = "Job"

    def list(self, namespace: str, monitor: str) -> list[dict[str, Any]]:
        return self.kube.list_jobs(namespace, {RUN_LABEL: monitor})

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get_job(namespace, name)

    def create(self, namespace: str, job: dict[str, Any], spec: MonitorSpec) -> dict[str, Any]:
        return self.kube.create_job(namespace, job)

    def delete(self, namespace: str, name: str) -> None:
        self.kube.delete_job(namespace, name)

    def outcome(self, obj: Mapping[str, Any]) -> JobOutcome:
        return job_outcome(obj)

    def report_configmap(self, name: str) -> str:
        return report_configmap_name(name)


@dataclass
class JobRunner:
    kube: KubeClient
    settings: JobSettings
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    poll_seconds: float = 1.0
    slots: RunSlots | None = None  # None: take no slot (tests, the job pod)
    workload: RunWorkload | None = None  # None: batch/v1 Jobs (BatchJobs)

    def __post_init__(self) -> None:
        self.work: RunWorkload = self.workload or BatchJobs(self.kube)

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
        except RunUnavailableError as exc:  # the workload's API is missing or forbidden
            log.warning("run of %s/%s: %s", namespace, name, exc)
            return _failed(started, time.perf_counter() - t0, exc.reason, str(exc))
        except Exception as exc:  # the API failed us: report it, never crash the loop
            log.exception("job-mode run of %s/%s failed", namespace, name)
            return _failed(
                started, time.perf_counter() - t0, "JobFailed", f"{type(exc).__name__}: {exc}"
            )
        await asyncio.to_thread(self.work.delete, namespace, job["metadata"]["name"])
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
        jobs = await asyncio.to_thread(self.work.list, namespace, name)
        last_run = parse_time((status.get("lastRun") or {}).get("time"))
        pending = []
        for job in jobs:
            if not is_recorded_run(job, self.work.kind, status):
                # not the run this operator created (a look-alike, or one created just
                # before a crash, unrecorded): never read; its own TTL and the garbage
                # collector remove the operator's, the rest is not the operator's business
                log.info(
                    "not adopting %s %s of %s/%s: not the run recorded in status.activeRun",
                    self.work.kind,
                    job["metadata"].get("name"),
                    namespace,
                    name,
                )
                continue
            created = parse_time(job["metadata"].get("creationTimestamp"))
            unread = last_run is None or (created is not None and created > last_run)
            if self.work.outcome(job).state == "running" or unread:
                pending.append(job)
            else:  # finished and already reported: clean up
                await asyncio.to_thread(self.work.delete, namespace, job["metadata"]["name"])
        if pending:
            pending.sort(key=lambda j: j["metadata"].get("creationTimestamp", ""))
            log.info(
                "adopting %s %s of %s/%s",
                self.work.kind,
                pending[-1]["metadata"]["name"],
                namespace,
                name,
            )
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
        run = await asyncio.to_thread(self.work.create, namespace, manifest, spec)
        await self._record(namespace, name, run)
        return run

    async def _record(self, namespace: str, name: str, created: Mapping[str, Any]) -> None:
        """status.activeRun = the run object just created, so that an operator restarted
        mid-run adopts exactly it. Not fatal: without it a restart starts a fresh run."""
        record = active_run_record(created, self.work.kind)
        try:
            await asyncio.to_thread(
                self.kube.update_monitor_status, namespace, name, lambda _: {ACTIVE_RUN: record}
            )
        except Exception as exc:
            log.warning("recording run %s of %s/%s: %s", record["name"], namespace, name, exc)

    async def _wait(
        self, namespace: str, job: dict[str, Any], spec: MonitorSpec, t0: float
    ) -> JobOutcome:
        name = job["metadata"]["name"]
        kind = self.work.kind
        created = parse_time(job["metadata"].get("creationTimestamp")) or self.clock()
        limit = spec.schedule.job_active_deadline_seconds + GRACE_SECONDS
        deadline = spec.schedule.run_timeout_seconds
        while True:
            if time.perf_counter() - t0 >= deadline:
                return JobOutcome(
                    "failed",
                    RUN_TIMED_OUT,
                    f"{kind} {name} still running at spec.schedule.runTimeout ({deadline:g}s); "
                    "deleted",
                )
            current = await asyncio.to_thread(self.work.get, namespace, name)
            if current is None:
                return JobOutcome("failed", "JobDeleted", f"{kind} {name} was deleted")
            outcome = self.work.outcome(current)
            if outcome.state != "running":
                return outcome
            if (self.clock() - created).total_seconds() > limit:
                return JobOutcome(
                    "failed", "JobStuck", f"{kind} {name} still running after {limit:.0f}s"
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
        name = f"{self.work.kind} {job['metadata']['name']}"
        if outcome.reason == RUN_TIMED_OUT:
            return _failed(started, elapsed, RUN_TIMED_OUT, outcome.message)
        if outcome.state == "failed":
            detail = f"{name} failed: {outcome.reason}"
            if outcome.message:
                detail += f" ({outcome.message})"
            return _failed(started, elapsed, "JobFailed", detail)
        report_name = self.work.report_configmap(job["metadata"]["name"])
        cm = await asyncio.to_thread(self.kube.get, "ConfigMap", namespace, report_name)
        payload = ((cm or {}).get("data") or {}).get(REPORT_KEY)
        if payload is None:
            return _failed(started, elapsed, "JobFailed", f"{name} finished without a report")
        seal = check_report(payload, await self._run_pods(namespace, job), _uid(job))
        if not seal.ok:
            log.warning("%s in %s: %s: %s", name, namespace, REPORT_UNVERIFIED, seal.message)
            return _failed(started, elapsed, REPORT_UNVERIFIED, f"{name}: {seal.message}")
        try:
            report = Report.from_dict(json.loads(payload))
        except (ValueError, KeyError, TypeError) as exc:
            return _failed(
                started, elapsed, "JobFailed", f"{name} wrote an unreadable report: {exc}"
            )
        return report

    async def _run_pods(self, namespace: str, job: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The pods of run object ``job`` (a Job's pod, a DaskJob's runner pod), found by
        the run labels its pod template carries; at most :data:`MAX_RUN_PODS` of them.
        Which of them the run object controls is checked by uid (core/report_seal.py)."""
        labels = job["metadata"].get("labels") or {}
        selector = {k: labels[k] for k in (RUN_LABEL, RUN_ID_LABEL) if labels.get(k)}
        if len(selector) < 2:
            return []
        return await asyncio.to_thread(
            self.kube.list, "Pod", namespace, selector, limit=MAX_RUN_PODS
        )


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


class RunUnavailableError(Exception):
    """The run's workload cannot be used at all (its CRD is absent, the operator lacks
    the rights): reported with ``reason`` on the monitor, never retried in a loop."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _failed(started: dt.datetime, elapsed: float, reason: str, message: str) -> Report:
    return Report(
        started=started,
        duration_seconds=elapsed,
        mode="job",
        samples=0,
        drift=DriftSummary("unavailable"),
        problems=(Problem(reason, message),),
    )
