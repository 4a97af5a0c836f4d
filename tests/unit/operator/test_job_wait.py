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
from modelmonitor.core.report_seal import REPORT_UNVERIFIED
from modelmonitor.core.spec import MonitorSpec, parse_spec
from modelmonitor.engine.job_runner import JobRunner
from modelmonitor.engine.runloop import run_within_deadline
from modelmonitor.engine.slots import RunSlots
from tests.unit.operator.run_pods import RunPodsAndStatus, sealed_pod


class Jobs(RunPodsAndStatus):
    """Jobs that run until ``finish()``; records what the runner asked."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.configmaps: dict[str, dict[str, Any]] = {}

    def list_jobs(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return list(self.jobs.values())

    def get_monitor(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "uid": "uid-1"}}

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        job = {**manifest, "status": {}}
        job["metadata"] = {
            **manifest["metadata"],
            "creationTimestamp": None,
            "uid": f"job-uid-{len(self.jobs)}",
        }
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
        """Each Job's pod stored its report and sealed it in its termination message."""
        for name, job in self.jobs.items():
            job["status"] = {"succeeded": 1}
            report = Report(dt.datetime.now(dt.UTC), 0.1, "job", 10, DriftSummary("disabled"))
            payload = json.dumps(report.to_dict())
            self.configmaps[report_configmap_name(name)] = {"data": {REPORT_KEY: payload}}
            self.pods.append(sealed_pod(job["metadata"]["uid"], payload))


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


def test_a_report_replaced_after_the_pod_wrote_it_is_not_trusted() -> None:
    """Someone who may write ConfigMaps swaps the report for a "drifted" one after the
    pod sealed it: the run fails as ReportUnverified instead of acting on the forgery."""

    async def scenario() -> Report:
        jobs = Jobs()
        runner = job_runner(jobs, RunSlots(1))
        task = asyncio.create_task(runner.run("ns", "m", spec("30s"), {}))
        while not jobs.jobs:
            await asyncio.sleep(0.01)
        jobs.finish()
        name = report_configmap_name(next(iter(jobs.jobs)))
        forged = Report(now(), 0.1, "job", 10, DriftSummary("ok", drifted=True, share=1.0))
        jobs.configmaps[name] = {"data": {REPORT_KEY: json.dumps(forged.to_dict())}}
        report = await task
        assert jobs.pod_lists
        assert set(jobs.pod_lists[0]) == {
            "modelmonitor.io/monitor",
            "modelmonitor.io/run-id",
        }
        return report

    report = asyncio.run(scenario())
    assert report.drift.status == "unavailable"
    assert [p.reason for p in report.problems] == [REPORT_UNVERIFIED]
    assert "does not match what the run pod wrote" in report.problems[0].message


def test_the_created_job_is_recorded_and_only_it_is_adopted() -> None:
    """status.activeRun names the Job by uid; a Job carrying the run label but another
    uid (anyone who may create Jobs could make one) is neither adopted nor read."""

    async def scenario() -> tuple[Jobs, Report]:
        jobs = Jobs()
        forged = {
            "metadata": {"name": "m-run-forged", "uid": "forged", "creationTimestamp": None},
            "status": {"succeeded": 1},
        }
        jobs.jobs["m-run-forged"] = forged
        forged_report = Report(now(), 0.1, "job", 99, DriftSummary("ok", drifted=True))
        jobs.configmaps[report_configmap_name("m-run-forged")] = {
            "data": {REPORT_KEY: json.dumps(forged_report.to_dict())}
        }
        status = {"activeRun": {"kind": "Job", "name": "m-run-forged", "uid": "recorded"}}
        task = asyncio.create_task(
            job_runner(jobs, RunSlots(1)).run("ns", "m", spec("30s"), status)
        )
        while len(jobs.jobs) < 2:
            await asyncio.sleep(0.01)
        jobs.finish()
        return jobs, await task

    jobs, report = asyncio.run(scenario())
    assert report.samples == 10  # its own Job's report, not the forged one's 99
    assert jobs.status["activeRun"]["kind"] == "Job"
    assert jobs.status["activeRun"]["uid"] == "job-uid-1"
    assert jobs.deleted == [jobs.status["activeRun"]["name"]]
    assert "m-run-forged" in jobs.jobs
