"""The per-monitor loop that schedules runs and writes their verdicts.

One loop per ModelMonitor (a kopf daemon): it waits until the next run is due
(:mod:`modelmonitor.core.scheduling`), takes one of the operator-wide run slots within its
namespace's share (:mod:`modelmonitor.engine.slots`), asks the :class:`Runner` for a
:class:`~modelmonitor.core.report.Report` within the run's deadline
(``spec.schedule.runTimeout``), and writes the verdict (:mod:`modelmonitor.core.verdict`)
to status with a conflict-safe patch, Events on transitions and metrics. A monitor never
has two runs at once: the loop runs them one after another. A job-mode run takes no slot
here: its runner holds one only for its API calls, not while the Job runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from modelmonitor.core.incident import ActionRequest, ActionResult
from modelmonitor.core.report import Report, timed_out
from modelmonitor.core.scheduling import next_due, parse_time
from modelmonitor.core.spec import MonitorSpec, SpecError, parse_spec
from modelmonitor.core.status import ConditionType, find_condition
from modelmonitor.core.verdict import Event, Verdict, decide
from modelmonitor.engine.leader import AlwaysLeading, Leadership
from modelmonitor.engine.remediation import (
    GitOpsView,
    NoRemediation,
    Remediation,
    Revisions,
    result_event,
)
from modelmonitor.engine.run_failure import StatusWriter, report_failure
from modelmonitor.engine.slots import RunSlots

log = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 5.0  # re-read the (live) spec at least this often while waiting
# A job-mode runner stops waiting for its Job at the deadline itself (and deletes it);
# the loop's own timeout, this much later, is the backstop if the API hangs.
JOB_DEADLINE_MARGIN_SECONDS = 30.0


class Runner(Protocol):
    async def run(
        self, namespace: str, name: str, spec: MonitorSpec, status: Mapping[str, Any]
    ) -> Report: ...


@dataclass
class ModeRunner:
    """Sends each run where its spec says: ``inline`` here, ``job`` to a Kubernetes Job,
    ``dask`` with ``cluster`` to a DaskJob (``dask_cluster``; None: to a Job as well, whose
    run then reports the engine missing)."""

    inline: Runner
    job: Runner
    dask_cluster: Runner | None = None

    async def run(
        self, namespace: str, name: str, spec: MonitorSpec, status: Mapping[str, Any]
    ) -> Report:
        runner = self.job if spec.schedule.in_job else self.inline
        dask = spec.schedule.dask
        if spec.schedule.mode == "dask" and dask is not None and dask.cluster is not None:
            runner = self.dask_cluster or runner
        return await runner.run(namespace, name, spec, status)


class Stopped(Protocol):
    """kopf's DaemonStopped: truthy once stopping; ``wait`` returns early then."""

    def __bool__(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> Awaitable[Any]: ...


@dataclass
class LoopDeps:
    runner: Runner
    writer: StatusWriter
    slots: RunSlots
    post_event: Callable[[Event], None]
    on_verdict: Callable[[Report, Verdict, float], None]
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    remediator: Remediation = field(default_factory=NoRemediation)
    on_action: Callable[[str, str], None] = field(default=lambda action, result: None)
    # (sink, sink type, result) per notification attempt: modelmonitor_notifications_total
    on_notification: Callable[[str, str, str], None] = field(
        default=lambda sink, type_, result: None
    )
    # the fence: only the replica holding the Lease starts runs, writes verdicts and acts
    leader: Leadership = field(default_factory=AlwaysLeading)


def _ready(status: Mapping[str, Any]) -> bool:
    cond = find_condition(status.get("conditions"), ConditionType.READY)
    return cond is not None and cond.get("status") == "True"


async def run_loop(
    namespace: str,
    name: str,
    body: Mapping[str, Any],
    stopped: Stopped,
    deps: LoopDeps,
    *,
    idle_seconds: float = MAX_SLEEP_SECONDS,
) -> None:
    """Run the monitor on its schedule until ``stopped``; ``body`` is kopf's live view."""
    key = f"{namespace}/{name}"
    last_local: dt.datetime | None = None
    # The due time is planned once per (last run, interval): re-planning on every wake-up
    # would push a "run soon" plan forward forever.
    plan: tuple[dt.datetime | None, float, dt.datetime] | None = None
    parsed: tuple[Any, MonitorSpec | None] = (None, None)  # (generation, spec) parsed once
    done: set[str] = set()  # action requests carried out by this loop (body may lag behind)
    while not stopped:
        if not deps.leader.leading():
            await _stand_by(stopped, deps.leader, idle_seconds)
            continue
        status: Mapping[str, Any] = body.get("status") or {}
        generation = (body.get("metadata") or {}).get("generation")
        if parsed[0] != generation or parsed[1] is None:
            try:
                parsed = (generation, parse_spec(body.get("spec") or {}))
            except SpecError:
                parsed = (generation, None)
        spec = parsed[1]
        if spec is None:
            await stopped.wait(idle_seconds)  # the spec handler reports it
            continue
        # left pending by a decision whose operator stopped before acting on it
        leftover = [r for r in deps.remediator.pending(body) if r.id not in done]
        if leftover:
            # the intent's Events, which a stop right after recording it may have lost
            await _post(body, deps.remediator.announcements(body, spec), deps)
            await _act(namespace, name, spec, leftover, body, done, deps)
        if deps.remediator.deliveries_due(body, deps.clock()):
            # queued notices (kopf's view may lag: _deliver reads the object first)
            await _deliver(namespace, name, spec, deps)
        if not _ready(status):
            await stopped.wait(idle_seconds)  # invalid or not yet validated
            continue
        last_status = parse_time((status.get("lastRun") or {}).get("time"))
        candidates = [t for t in (last_status, last_local) if t is not None]
        last = max(candidates) if candidates else None
        now = deps.clock()
        interval = spec.schedule.interval_seconds
        if plan is None or plan[:2] != (last, interval):
            plan = (last, interval, next_due(last, interval, now, key))
        due = plan[2]
        delay = (due - now).total_seconds()
        if delay > 0:
            await stopped.wait(min(delay, idle_seconds))
            continue
        async with _slot(deps.slots, namespace, spec):
            if stopped:
                break
            if not deps.leader.leading():
                continue  # the Lease was lost while waiting for a slot
            lag = max(0.0, (deps.clock() - due).total_seconds())
            started = deps.clock()
            try:
                before = await _observe(namespace, spec, deps)
                report = await run_within_deadline(
                    deps.runner, namespace, name, spec, status, deps.clock
                )
                after = await _observe(namespace, spec, deps)
                gitops = await _observe_gitops(namespace, spec, status, deps)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("run of %s failed unexpectedly", key)
                last_local = deps.clock()
                if deps.leader.leading():
                    await report_failure(namespace, name, spec, exc, started, lag, deps)
                continue
        last_local = report.finished
        requests = await _write(
            namespace, name, spec, report, (before, after), lag, deps, gitops=gitops
        )
        if requests:
            await _act(namespace, name, spec, requests, body, done, deps)
        if spec.alerting.sinks or (status.get("alerting") or {}).get("outbox"):
            await _deliver(namespace, name, spec, deps)  # what this run queued


async def _stand_by(stopped: Stopped, leader: Leadership, timeout: float) -> None:
    """Wait until this replica leads, the loop is stopped, or ``timeout`` passed."""
    waits = [
        asyncio.ensure_future(stopped.wait(timeout)),
        asyncio.ensure_future(leader.wait_leading(timeout)),
    ]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


def _slot(
    slots: RunSlots, namespace: str, spec: MonitorSpec
) -> contextlib.AbstractAsyncContextManager[None]:
    """The loop holds a slot for an inline run; a job-mode runner takes its own, briefly."""
    if spec.schedule.in_job:
        return contextlib.nullcontext()
    return slots.hold(namespace)


async def run_within_deadline(
    runner: Runner,
    namespace: str,
    name: str,
    spec: MonitorSpec,
    status: Mapping[str, Any],
    clock: Callable[[], dt.datetime],
) -> Report:
    """One run, stopped at ``spec.schedule.runTimeout``: then a RunTimedOut report.

    Stopping cancels the run (its requests are closed, its slot is freed at once); a
    statistic already computing in a worker thread finishes there, unseen.
    """
    limit = spec.schedule.run_timeout_seconds
    hard = limit + (JOB_DEADLINE_MARGIN_SECONDS if spec.schedule.in_job else 0.0)
    started = clock()
    t0 = time.perf_counter()
    deadline = asyncio.timeout(hard)
    try:
        async with deadline:
            return await runner.run(namespace, name, spec, status)
    except TimeoutError:
        if not deadline.expired():
            raise  # the runner's own error, not the deadline
        log.warning("run of %s/%s stopped at its deadline (%gs)", namespace, name, limit)
        mode: Literal["inline", "job"] = "job" if spec.schedule.in_job else "inline"
        return timed_out(started, time.perf_counter() - t0, mode, limit)


async def _observe(namespace: str, spec: MonitorSpec, deps: LoopDeps) -> dict[str, Any] | None:
    if not deps.remediator.tracks_revisions(spec):
        return None  # no thread hop for the monitors that never roll back
    return await asyncio.to_thread(deps.remediator.observe_revision, namespace, spec)


async def _observe_gitops(
    namespace: str, spec: MonitorSpec, status: Mapping[str, Any], deps: LoopDeps
) -> GitOpsView | None:
    if not deps.remediator.tracks_gitops(spec, status):
        return None
    return await asyncio.to_thread(deps.remediator.observe_gitops, namespace, spec, status)


async def _write(
    namespace: str,
    name: str,
    spec: MonitorSpec,
    report: Report,
    revisions: Revisions,
    lag: float,
    deps: LoopDeps,
    *,
    gitops: GitOpsView | None = None,
) -> tuple[ActionRequest, ...]:
    """Write the verdict and, in the same write, the policy's decision; return what to do."""
    holder: dict[str, Any] = {}

    def compute(obj: dict[str, Any]) -> dict[str, Any] | None:
        status = obj.get("status") or {}
        if not _ready(status):
            return None  # became invalid meanwhile: the spec handler owns status now
        if not deps.leader.leading():
            log.warning("%s/%s: lease lost during the run, its verdict is dropped", namespace, name)
            return None  # the replica that holds the Lease now runs and decides
        gen = obj.get("metadata", {}).get("generation")
        now = deps.clock()
        verdict = decide(report, status, generation=gen if isinstance(gen, int) else None, now=now)
        holder["verdict"] = verdict
        plan = deps.remediator.plan(obj, spec, verdict, revisions, now, gitops)
        holder["plan"] = plan
        return {**verdict.status_patch, **plan.status_patch}

    written = await asyncio.to_thread(deps.writer.update_monitor_status, namespace, name, compute)
    verdict: Verdict | None = holder.get("verdict")
    if written is None or verdict is None:
        return ()
    for event in verdict.events:
        deps.post_event(event)
    deps.on_verdict(report, verdict, lag)
    plan = holder["plan"]
    await _post(written[0], plan.events, deps)
    for action, result in plan.results:
        deps.on_action(action, result)
    return tuple(plan.requests)


async def _post(obj: Mapping[str, Any], events: Sequence[Event], deps: LoopDeps) -> None:
    """Post Events; the keyed ones (an incident's intent) once, before anything is done."""
    keyed = [e for e in events if e.key]
    if keyed:
        await asyncio.to_thread(deps.remediator.announce, obj, keyed)
    for event in events:
        if not event.key:
            deps.post_event(event)


async def _act(
    namespace: str,
    name: str,
    spec: MonitorSpec,
    requests: tuple[ActionRequest, ...] | list[ActionRequest],
    body: Mapping[str, Any],
    done: set[str],
    deps: LoopDeps,
) -> None:
    """Carry out recorded requests one by one, each result written as it comes."""
    remediator = deps.remediator
    for request in requests:
        if not deps.leader.leading():
            # fenced: the request stays pending in status for the replica that leads now
            log.warning("%s/%s: lease lost, %s left to the leader", namespace, name, request.id)
            return
        metadata = dict(body.get("metadata") or {})
        result = await asyncio.to_thread(remediator.execute, spec, request, metadata)
        done.add(request.id)

        compute = functools.partial(_record, remediator, request, result, deps.clock)
        written = await asyncio.to_thread(
            deps.writer.update_monitor_status, namespace, name, compute
        )
        if written is None:
            log.info("%s/%s: %s was recorded already", namespace, name, request.id)
            continue
        deps.post_event(result_event(request, result))
        deps.on_action(request.action, result.outcome.value)


async def _deliver(namespace: str, name: str, spec: MonitorSpec, deps: LoopDeps) -> None:
    """Send the incident notifications due in ``status.alerting.outbox``; record the tries.

    The outbox is read fresh (the notices were queued by this loop's own writes, which
    kopf's view may not show yet); sending runs on a worker thread, each POST with a
    timeout and a bounded read; the results are written in one conflict-safe update.
    """
    remediator = deps.remediator
    seen: dict[str, Any] = {}

    def read(obj: dict[str, Any]) -> None:
        seen["obj"] = obj
        return None

    await asyncio.to_thread(deps.writer.update_monitor_status, namespace, name, read)
    obj = seen.get("obj")
    if obj is None or not remediator.deliveries_due(obj, deps.clock()):
        return
    if not deps.leader.leading():
        return  # the leader delivers them
    attempts = await asyncio.to_thread(remediator.deliver, spec, obj, deps.clock())
    counted: list[tuple[str, str, str]] = []

    def compute(current: dict[str, Any]) -> dict[str, Any] | None:
        patch, found = remediator.record_deliveries(current, spec, attempts, deps.clock())
        counted[:] = found
        return patch

    await asyncio.to_thread(deps.writer.update_monitor_status, namespace, name, compute)
    for sink, type_, result in counted:
        deps.on_notification(sink, type_, result)


def _record(
    remediator: Remediation,
    request: ActionRequest,
    result: ActionResult,
    clock: Callable[[], dt.datetime],
    obj: dict[str, Any],
) -> dict[str, Any] | None:
    return remediator.record(obj, request, result, clock())
