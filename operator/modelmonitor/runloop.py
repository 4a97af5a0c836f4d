"""The per-monitor loop that schedules runs and writes their verdicts.

One loop per ModelMonitor (a kopf daemon): it waits until the next run is due
(:mod:`scheduling`), takes one of the operator-wide run slots (bounded concurrency),
asks the :class:`Runner` for a :class:`~modelmonitor.report.Report`, and writes the
verdict (:mod:`verdict`) to status with a conflict-safe patch, Events on transitions and
metrics. A monitor never has two runs at once: the loop runs them one after another.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelmonitor.report import Report
from modelmonitor.scheduling import next_due, parse_time
from modelmonitor.spec import MonitorSpec, SpecError, parse_spec
from modelmonitor.status import ConditionType, find_condition
from modelmonitor.verdict import Event, Verdict, decide

log = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 5.0  # re-read the (live) spec at least this often while waiting


class Runner(Protocol):
    async def run(
        self, namespace: str, name: str, spec: MonitorSpec, status: Mapping[str, Any]
    ) -> Report: ...


@dataclass
class ModeRunner:
    """Sends each run where its spec says: ``inline`` here, ``job`` to a Kubernetes Job."""

    inline: Runner
    job: Runner

    async def run(
        self, namespace: str, name: str, spec: MonitorSpec, status: Mapping[str, Any]
    ) -> Report:
        runner = self.job if spec.schedule.mode == "job" else self.inline
        return await runner.run(namespace, name, spec, status)


class StatusWriter(Protocol):
    def update_monitor_status(
        self,
        namespace: str,
        name: str,
        compute: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> tuple[dict[str, Any], dict[str, Any]] | None: ...


class Stopped(Protocol):
    """kopf's DaemonStopped: truthy once stopping; ``wait`` returns early then."""

    def __bool__(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> Awaitable[Any]: ...


@dataclass
class LoopDeps:
    runner: Runner
    writer: StatusWriter
    slots: asyncio.Semaphore
    post_event: Callable[[Event], None]
    on_verdict: Callable[[Report, Verdict, float], None]
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))


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
    while not stopped:
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
        async with deps.slots:
            if stopped:
                break
            lag = max(0.0, (deps.clock() - due).total_seconds())
            try:
                report = await deps.runner.run(namespace, name, spec, status)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("run of %s failed unexpectedly", key)
                last_local = deps.clock()
                continue
        last_local = report.finished
        generation = (body.get("metadata") or {}).get("generation")
        await _write(namespace, name, report, generation, lag, deps)


async def _write(
    namespace: str,
    name: str,
    report: Report,
    generation: Any,
    lag: float,
    deps: LoopDeps,
) -> None:
    holder: dict[str, Verdict] = {}

    def compute(obj: dict[str, Any]) -> dict[str, Any] | None:
        status = obj.get("status") or {}
        if not _ready(status):
            return None  # became invalid meanwhile: the spec handler owns status now
        gen = obj.get("metadata", {}).get("generation")
        verdict = decide(
            report, status, generation=gen if isinstance(gen, int) else None, now=deps.clock()
        )
        holder["verdict"] = verdict
        return verdict.status_patch

    written = await asyncio.to_thread(deps.writer.update_monitor_status, namespace, name, compute)
    verdict = holder.get("verdict")
    if written is None or verdict is None:
        return
    for event in verdict.events:
        deps.post_event(event)
    deps.on_verdict(report, verdict, lag)
