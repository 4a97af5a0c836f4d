"""Run deadlines and fair slots against real sockets: an endpoint that accepts and never
answers must not hold a slot past the run's deadline, nor delay another namespace's runs,
nor ever trigger an action."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from modelmonitor.core.policy import Signal, observe
from modelmonitor.core.report import RUN_TIMED_OUT, Report, timed_out
from modelmonitor.core.spec import MonitorSpec, parse_spec
from modelmonitor.core.verdict import decide
from modelmonitor.engine.runloop import run_within_deadline
from modelmonitor.engine.runner import InlineRunner
from modelmonitor.engine.slots import RunSlots
from modelmonitor.sources.base import Clients
from modelmonitor.sources.reference import ReferenceCache
from tests.unit.loopback import LOOPBACK_ALLOWED

REFERENCE = [{"x": i / 10, "prediction": "a" if i < 30 else "b"} for i in range(60)]


class Objects:
    """No cluster objects: the reference is inline and the endpoint a URL."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> Sequence[dict[str, Any]]:
        return []


@contextlib.asynccontextmanager
async def silent_endpoint() -> AsyncIterator[tuple[str, list[int]]]:
    """Accepts connections, reads the requests and never answers (counts connections)."""
    accepted = [0]
    writers: list[asyncio.StreamWriter] = []

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        writers.append(writer)
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        for w in writers:
            w.close()
        server.close()


@contextlib.asynccontextmanager
async def model_server() -> AsyncIterator[str]:
    async def predict(request: web.Request) -> web.Response:
        rows = (await request.json())["instances"]
        return web.json_response({"predictions": ["a" if r["x"] < 3 else "b" for r in rows]})

    app = web.Application()
    app.router.add_post("/predict", predict)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def monitor(url: str, **schedule: Any) -> MonitorSpec:
    return parse_spec(
        {
            "target": {
                "name": "m",
                "kind": "External",
                "endpoint": {"url": url, "protocol": "json"},
            },
            "reference": {"inline": REFERENCE},
            "features": [{"name": "x"}],
            "prediction": {"name": "prediction", "type": "categorical"},
            # the most patient probe the CRD allows: 300 s per request, 10 retries
            "data": {"probe": {"samples": 20, "timeoutSeconds": 300, "retries": 10}},
            "drift": {"minSamples": 5},
            "schedule": schedule,
        }
    )


def inline_runner() -> InlineRunner:
    objects = Objects()
    return InlineRunner(
        Clients(
            references=ReferenceCache(objects, outbound=LOOPBACK_ALLOWED),
            lookup=objects,
            outbound=LOOPBACK_ALLOWED,
        )
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _hostile_runs(
    slots: RunSlots, runner: InlineRunner, spec: MonitorSpec, i: int, reports: list[Report]
) -> None:
    while True:
        async with slots.hold("hostile"):
            reports.append(await run_within_deadline(runner, "hostile", f"m{i}", spec, {}, now))


async def _healthy_waits(slots: RunSlots, url: str, runs: int) -> tuple[list[float], list[Report]]:
    """Each run's wait for a slot; the runs go one after another, as a monitor's do."""
    runner = inline_runner()
    spec = monitor(url)
    waits: list[float] = []
    reports: list[Report] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        async with slots.hold("team"):
            waits.append(time.perf_counter() - t0)
            reports.append(await run_within_deadline(runner, "team", "healthy", spec, {}, now))
        await asyncio.sleep(0.05)
    return waits, reports


async def _attack(slots: RunSlots) -> tuple[list[float], list[Report], list[Report], int]:
    async with silent_endpoint() as (silent, accepted), model_server() as url:
        runner = inline_runner()
        hostile_spec = monitor(silent, runTimeout="1s")
        hostile: list[Report] = []
        tasks = [
            asyncio.create_task(_hostile_runs(slots, runner, hostile_spec, i, hostile))
            for i in range(20)
        ]
        await asyncio.sleep(0.3)  # the hostile runs take every slot they may
        try:
            waits, healthy = await _healthy_waits(slots, url, runs=4)
            await asyncio.sleep(1.2)  # let the first hostile runs reach their deadline
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return waits, healthy, hostile, accepted[0]


def test_a_silent_endpoint_does_not_delay_a_healthy_monitor() -> None:
    waits, healthy, hostile, accepted = asyncio.run(_attack(RunSlots(4)))
    assert accepted > 0  # the hostile probes did reach the silent endpoint
    # the healthy monitor's runs started at once and measured what they should
    assert max(waits) < 0.3, waits
    assert all(not r.problems for r in healthy), [r.problems for r in healthy]
    assert all(r.drift.status == "ok" for r in healthy)
    # the hostile runs end at their deadline, not after 300 s x 11 attempts
    assert hostile, "no hostile run reached its deadline"
    assert all(r.problems[0].reason == RUN_TIMED_OUT for r in hostile)
    assert all(0.9 < r.duration_seconds < 3 for r in hostile), [r.duration_seconds for r in hostile]


def test_without_fair_shares_the_same_attack_delays_the_healthy_monitor() -> None:
    """The control: a namespace allowed every slot (the old single semaphore) makes the
    healthy monitor wait for a hostile run's deadline: what the share prevents."""
    waits, _, _, _ = asyncio.run(_attack(RunSlots(4, per_namespace=4)))
    assert max(waits) > 0.5, waits


def test_a_run_stopped_at_its_deadline_is_degraded_and_never_acts() -> None:
    """Even with a breach on record, a timed-out run is no evidence: the policy holds."""
    report = timed_out(now(), 1.0, "inline", 1.0)
    status = {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Configured"},
            {"type": "SLOBreached", "status": "True", "reason": "SLOBreached", "message": "p95"},
            {"type": "DriftDetected", "status": "True", "reason": "DriftDetected"},
        ]
    }
    verdict = decide(report, status, generation=1, now=now())
    degraded = next(c for c in verdict.conditions if c.type == "Degraded")
    assert (degraded.status, degraded.reason) == ("True", RUN_TIMED_OUT)
    assert "spec.schedule.runTimeout (1s)" in degraded.message
    assert [e.reason for e in verdict.events] == [RUN_TIMED_OUT]
    seen = observe(verdict.current, verdict.phase.value, verdict.slos, frozenset())
    assert seen.signal is Signal.UNKNOWN


def test_a_runner_that_ignores_its_deadline_is_still_stopped() -> None:
    class Hangs:
        async def run(self, *args: Any) -> Report:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

    spec = monitor("http://127.0.0.1:9", runTimeout="1s")
    t0 = time.perf_counter()
    report = asyncio.run(run_within_deadline(Hangs(), "ns", "m", spec, {}, now))
    assert time.perf_counter() - t0 < 2
    assert report.problems[0].reason == RUN_TIMED_OUT
    assert report.mode == "inline"
    assert json.dumps(report.to_dict())  # written to status like any report
