"""Job mode under the run deadline: the wait for a Job holds no run slot, ends at
``spec.schedule.runTimeout`` as RunTimedOut, and the Job is deleted then.

The cluster is a small fake of the Kubernetes client's Job calls (our own interface);
the e2e tests run real Jobs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from modelmonitor.core.jobs import REPORT_KEY, JobSettings, report_configmap_name
from modelmonitor.core.report import RUN_TIMED_OUT, DriftSummary, Report
from modelmonitor.core.spec import MonitorSpec, parse_spec
from modelmonitor.engine.job_runner import JobRunner
from modelmonitor.engine.runloop import run_within_deadline
from modelmonitor.engine.slots import RunSlots


class Jobs:
    """Jobs that run until ``finish()``; records what the runner asked."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.configmaps: dict[str, dict[str, Any]] = {}

    def list_jobs(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return list(self.jobs.values())

    def get_monitor(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "uid": "uid-1"}}

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        job = {**manifest, "status": {}}
        job["metadata"] = {**manifest["metadata"], "creationTimestamp": None}
        self.jobs[job["metadata"]["name"]] = job
        return job

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.jobs.get(name)

    def delete_job(self, namespace: str, name: str) -> None:
        self.deleted.append(name)
        self.jobs.pop(name, None)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.configmaps.get(name)

    def finish(self) -> None:
        for name, job in self.jobs.items():
            job["status"] = {"succeeded": 1}
            report = Report(dt.datetime.now(dt.UTC), 0.1, "job", 10, DriftSummary("disabled"))
            self.configmaps[report_configmap_name(name)] = {
                "data": {REPORT_KEY: json.dumps(report.to_dict())}
            }


def spec(run_timeout: str) -> MonitorSpec:
    return parse_spec(
        {
            "target": {"name": "m"},
            "reference": {"configMapRef": {"name": "r", "key": "k"}},
            "schedule": {"mode": "job", "runTimeout": run_timeout},
        }
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def job_runner(jobs: Jobs, slots: RunSlots) -> JobRunner:
    settings = JobSettings("img", "sa")
    return JobRunner(jobs, settings, poll_seconds=0.05, slots=slots)  # type: ignore[arg-type]


def test_waiting_for_a_job_holds_no_slot() -> None:
    async def scenario() -> tuple[Report, int]:
        jobs = Jobs()
        slots = RunSlots(1)  # one slot for everything
        runner = job_runner(jobs, slots)
        run = asyncio.create_task(run_within_deadline(runner, "ml", "m", spec("10s"), {}, now))
        await asyncio.sleep(0.2)
        assert jobs.jobs, "the Job was created"
        in_use = slots.in_use  # while the Job runs
        async with asyncio.timeout(1), slots.hold("other"):
            pass  # another namespace's run gets the only slot meanwhile
        jobs.finish()
        return await run, in_use

    report, in_use = asyncio.run(scenario())
    assert in_use == 0
    assert not report.problems
    assert report.samples == 10  # the Job's report was read


def test_the_wait_ends_at_the_deadline_and_the_job_is_deleted() -> None:
    jobs = Jobs()
    runner = job_runner(jobs, RunSlots(4))
    report = asyncio.run(run_within_deadline(runner, "ml", "m", spec("1s"), {}, now))
    assert report.problems[0].reason == RUN_TIMED_OUT
    assert "spec.schedule.runTimeout (1s)" in report.problems[0].message
    assert report.duration_seconds < 2
    assert len(jobs.deleted) == 1
    assert not jobs.jobs


def test_the_jobs_own_deadline_is_capped_at_the_runs() -> None:
    """Kubernetes stops the pod no later than the operator stops waiting for it."""

    async def scenario() -> dict[str, Any]:
        jobs = Jobs()
        runner = job_runner(jobs, RunSlots(4))
        run = asyncio.create_task(run_within_deadline(runner, "ml", "m", spec("30s"), {}, now))
        await asyncio.sleep(0.2)
        job = next(iter(jobs.jobs.values()))
        jobs.finish()
        await run
        return job

    job = asyncio.run(scenario())
    assert job["spec"]["activeDeadlineSeconds"] == 30
