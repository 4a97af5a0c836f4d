"""The response buffer's per-namespace share: one team's big answers cannot leave another
team's unread, and a team alone still uses most of the buffer.

Real aiohttp servers on 127.0.0.1 whose big answers declare their length (taken from the
buffer at once) and then hold the body until the test lets them finish, so the bytes stay
held while another namespace asks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from modelmonitor.adapters.metrics import MetricsRecorder
from modelmonitor.adapters.outbound import BufferBusy, ByteBudget, Outbound
from modelmonitor.core.dataset import Dataset
from modelmonitor.core.outbound import (
    OutboundPolicy,
    ResponseLimits,
    buffer_refusal,
    buffer_share,
)
from modelmonitor.core.scheduling import namespace_share
from modelmonitor.core.spec import MonitorSpec, ReferenceSpec, parse_spec
from modelmonitor.engine.runner import InlineRunner
from modelmonitor.sources.base import Clients, RunContext
from modelmonitor.sources.probe import ProbeConfig, probe
from modelmonitor.sources.probe_result import OPERATOR_BUSY
from modelmonitor.sources.prometheus_source import PrometheusSource
from modelmonitor.sources.reference import ReferenceCache
from tests.unit.sources.test_prometheus_auth import spec_with

KIB = 1 << 10
BIG = 256 * KIB  # one big probe answer of team-a
LIMITS = ResponseLimits(probe=BIG, prometheus=BIG, reference=BIG, buffer=2 << 20)  # 8 bodies
CSV = b"amount,country\n1.5,de\n2.5,fr\n"


# -- the pure share ------------------------------------------------------------------------------
BUDGETS = (1, 2, 3, 100, 4 << 20, 256 << 20)
CAPS = (0, 1, 64 * KIB, 1 << 20, 64 << 20, 1 << 30)


def test_a_namespace_alone_gets_the_budget_less_the_run_slot_reserve() -> None:
    for budget in BUDGETS:
        assert buffer_share(budget, 1, 1) == namespace_share(budget, 1)
    assert buffer_share(256 << 20, 1, 1 << 20) == 192 << 20  # most of it: 3/4


@pytest.mark.parametrize("budget", BUDGETS)
def test_the_share_keeps_the_reserve_and_one_body(budget: int) -> None:
    alone = namespace_share(budget, 1)
    for active, cap in itertools.product(range(1, 40), CAPS):
        share = buffer_share(budget, active, cap)
        assert 1 <= share <= alone <= budget  # never the reserve, never past the budget
        assert share >= min(cap, alone)  # one body up to its cap, if the budget allows
        assert share <= buffer_share(budget, active - 1 or 1, cap)  # more readers, less each
        if cap <= namespace_share(budget, active) and budget > 1 and active <= alone:
            # the active namespaces' shares together leave the reserve free for a newcomer
            assert share * active <= alone < budget


def test_the_refusal_names_the_budget_before_the_share() -> None:
    assert buffer_refusal(100, 90, 0, 2, 20, 10) == "budget"
    assert buffer_refusal(100, 70, 70, 1, 10, 10) == "share"  # alone: 75 at most
    assert buffer_refusal(100, 70, 0, 2, 10, 10) is None  # another namespace: the reserve
    assert buffer_refusal(100, 0, 0, 1, 75, 10) is None
    assert buffer_refusal(100, 0, 0, 1, 76, 100) == "share"  # one body never takes the reserve


def test_the_budget_keeps_each_namespace_to_its_share() -> None:
    budget = ByteBudget(100)
    for _ in range(75):
        budget.take(1, "team-a", 1)
    with pytest.raises(BufferBusy, match="namespace team-a's share"):
        budget.take(1, "team-a", 1)
    budget.take(25, "team-b", 25)  # the reserve: the newcomer is not refused
    assert budget.held == {"team-a": 75, "team-b": 25}
    budget.give(25, "team-b")
    budget.give(75, "team-a")
    assert budget.held == {}
    assert budget.free == 100


# -- real servers --------------------------------------------------------------------------------
@dataclass
class Server:
    """/big answers BIG bytes, declared, and holds them until ``release``; the rest
    answer small at once."""

    base: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    big_asked: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "big":
            return await self._big(request)
        if name == "ref.csv":
            return web.Response(body=CSV)
        if name.startswith("api/v1/query"):
            return web.json_response(
                {"status": "success", "data": {"resultType": "vector", "result": []}}
            )
        return web.json_response({"predictions": ["yes"]})

    async def _big(self, request: web.Request) -> web.StreamResponse:
        self.big_asked += 1
        resp = web.StreamResponse()
        resp.content_length = BIG
        await resp.prepare(request)
        try:
            await resp.write(b"{")
            await self.release.wait()
            tail = b'"predictions": ["yes"]}'
            await resp.write(b" " * (BIG - 1 - len(tail)) + tail)
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the operator refused it and hung up
        return resp


@asynccontextmanager
async def serving() -> AsyncIterator[Server]:
    server = Server()
    app = web.Application()
    app.router.add_route("*", "/{name:.+}", server.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


def run(scenario: Callable[[Server], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with serving() as server:
            return await scenario(server)

    return asyncio.run(main())


def fence() -> Outbound:
    return Outbound(OutboundPolicy.parse(["127.0.0.0/8"]), LIMITS)


def big_probe(server: Server, concurrency: int) -> ProbeConfig:
    return ProbeConfig(
        url=server.base,
        protocol="json",
        path="/big",
        retries=0,
        concurrency=concurrency,
        timeout_seconds=30,
    )


async def flood(server: Server, outbound: Outbound, monitors: int, each: int) -> asyncio.Task[Any]:
    """``monitors`` probes of team-a, ``each`` big answers in flight at once, started and
    waited for until every answer is held or refused."""
    rows = Dataset({"a": np.arange(float(each))})
    team_a = outbound.for_namespace("team-a")
    task = asyncio.gather(
        *(probe(big_probe(server, each), rows, outbound=team_a) for _ in range(monitors))
    )
    total = monitors * each
    for _ in range(1000):
        held = outbound.buffer_held.get("team-a", 0) // BIG
        if server.big_asked == total and held + outbound.blocked.get("buffer_busy", 0) == total:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError(f"only {server.big_asked} of {total} answers started")
    return asyncio.ensure_future(task)


def test_many_big_answers_of_one_namespace_leave_another_namespaces_answers_read() -> None:
    """The attack: team-a's monitors draw big answers, all at once, to fill the buffer."""

    async def scenario(server: Server) -> None:
        outbound = fence()
        registry = CollectorRegistry()
        MetricsRecorder(registry).watch_outbound(outbound)
        team_a = await flood(server, outbound, monitors=4, each=8)
        assert outbound.buffer_held == {"team-a": 6 * BIG}  # 3/4 of 2 MiB; 26 refused
        assert outbound.blocked["buffer_busy"] == 26
        held = registry.get_sample_value(
            "modelmonitor_outbound_buffer_bytes", {"namespace": "team-a"}
        )
        assert held == 6 * BIG

        team_b = outbound.for_namespace("team-b")
        config = ProbeConfig(url=server.base, protocol="json", path="/small", retries=0)
        small = await probe(config, Dataset({"a": np.arange(1.0)}), outbound=team_b)
        assert small.failure != OPERATOR_BUSY
        assert small.n_requests == 1
        assert small.errors.total == 0
        cache = ReferenceCache(Objects(), outbound=outbound, http_timeout=10)  # type: ignore[arg-type]
        ref = ReferenceSpec(source="url", url=f"{server.base}/ref.csv")
        loaded = await cache.load("team-b", "m", ref)  # raises if refused
        assert [f.name for f in loaded.features] == ["amount", "country"]
        assert outbound.blocked["buffer_busy"] == 26  # none of team-b's

        server.release.set()
        results = await team_a
        assert sum(r.n_requests for r in results) == 6
        assert outbound.buffer_held == {}
        assert outbound.budget.free == LIMITS.buffer

    run(scenario)


def test_one_namespace_alone_still_uses_most_of_the_buffer() -> None:
    async def scenario(server: Server) -> None:
        outbound = fence()
        team_a = await flood(server, outbound, monitors=1, each=12)
        held = outbound.buffer_held["team-a"]
        assert held == 6 * BIG
        assert held >= LIMITS.buffer * 3 // 4
        server.release.set()
        (result,) = await team_a
        assert result.n_requests == 6
        assert result.errors.total == 0

    run(scenario)


class Objects:
    def get(self, kind: str, namespace: str, name: str) -> None:
        return None


def test_each_caller_reads_on_its_monitors_namespace() -> None:
    """Reference, Prometheus and probe reads are counted for the monitor's namespace."""

    async def scenario(server: Server) -> dict[str, int]:
        outbound = fence()
        seen: dict[str, int] = {}
        original = outbound.budget.take

        def take(n: int, namespace: str | None = None, cap: int = 0) -> None:
            seen[str(namespace)] = seen.get(str(namespace), 0) + 1
            original(n, namespace, cap)

        outbound.budget.take = take  # type: ignore[method-assign]
        cache = ReferenceCache(Objects(), outbound=outbound, http_timeout=10)  # type: ignore[arg-type]
        await cache.load("refs", "m", ReferenceSpec(source="url", url=f"{server.base}/ref.csv"))
        spec = parse_spec(spec_with({"url": server.base}, slos=True))
        clients = Clients(references=cache, lookup=Objects(), outbound=outbound)  # type: ignore[arg-type]
        started = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
        ctx = RunContext("proms", "watch", spec, {}, started, None, clients)
        await PrometheusSource().gather(ctx)
        report = await InlineRunner(clients).run("probes", "watch", probe_spec(server.base), {})
        assert report.details["probe"]["answered"] == 4
        return seen

    seen = run(scenario)
    assert seen.keys() == {"refs", "proms", "probes"}


def probe_spec(url: str) -> MonitorSpec:
    rows = [{"x": float(i), "prediction": "yes"} for i in range(4)]
    return parse_spec(
        {
            "target": {
                "name": "model",
                "kind": "External",
                "endpoint": {"url": url, "protocol": "json", "path": "/small"},
            },
            "reference": {"inline": rows},
            "features": [{"name": "x", "type": "numerical"}],
            "prediction": {"name": "prediction", "type": "categorical"},
            "data": {"probe": {"samples": 4, "retries": 0, "dataset": {"inline": rows}}},
        }
    )
