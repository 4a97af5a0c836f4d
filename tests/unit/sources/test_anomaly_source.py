"""The anomalies source against a local stand-in for Prometheus' range API.

The real server is exercised in tests/e2e/test_anomalies.py; here a tiny aiohttp app
answers ``/api/v1/query_range`` from a formula, so a unit test can count what a run asks
for (the whole lookback once, then only the tail), and send what a real Prometheus holds
only after days of scraping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from modelmonitor.core.report import Report
from modelmonitor.core.spec import SpecError, parse_spec
from modelmonitor.core.verdict import decide
from modelmonitor.engine.runner import InlineRunner
from modelmonitor.sources.anomaly_cache import SeriesCache
from modelmonitor.sources.base import Clients
from modelmonitor.sources.reference import ReferenceCache
from tests.unit.loopback import LOOPBACK_ALLOWED
from tests.unit.operator.test_runner import Objects

DAY = 86400.0
START = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.UTC)


def daily(t: float) -> float:
    return 100 + 50 * math.sin(2 * math.pi * t / DAY)


class FakeRangeApi:
    """Answers range queries with ``series(t)`` on the asked grid; records each ask."""

    def __init__(self, series: Callable[[float], float | None], n_series: int = 1) -> None:
        self.series = series
        self.n_series = n_series
        self.asks: list[tuple[float, float, float, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
        self.asks.append((start, end, step, str(form["query"])))
        values = []
        t = start
        while t <= end:
            v = self.series(t)
            if v is not None:
                values.append([t, repr(v)])
            t += step
        result = [{"metric": {"i": str(i)}, "values": values} for i in range(self.n_series)]
        return web.json_response(
            {"status": "success", "data": {"resultType": "matrix", "result": result}}
        )


def spec(url: str, **anomaly: Any):
    item = {"name": "p95", "query": "p95_seconds", "step": "1m", "lookback": "14d", **anomaly}
    return parse_spec(
        {
            "target": {"name": "m", "kind": "External", "endpoint": {"url": "http://m"}},
            "reference": {"inline": [{"x": 1}]},
            "drift": {"enabled": False},
            "prometheus": {"url": url},
            "anomalies": [item],
        }
    )


def runs(api: FakeRangeApi, clocks: list[dt.datetime], **anomaly: Any) -> list[Report]:
    """One run at each clock, with one cache (as the operator keeps it)."""

    async def scenario() -> list[Report]:
        app = web.Application()
        app.router.add_route("POST", "/api/v1/query_range", api.handle)
        server = web.AppRunner(app)
        await server.setup()
        await web.TCPSite(server, "127.0.0.1", 0).start()
        port = server.addresses[0][1]
        now = {"t": clocks[0]}
        objects = Objects()
        clients = Clients(
            references=ReferenceCache(objects, outbound=LOOPBACK_ALLOWED),
            lookup=objects,
            clock=lambda: now["t"],
            outbound=LOOPBACK_ALLOWED,
            series_cache=SeriesCache(),
        )
        inline = InlineRunner(clients)
        reports = []
        try:
            for clock in clocks:
                now["t"] = clock
                s = spec(f"http://127.0.0.1:{port}", **anomaly)
                reports.append(await inline.run("ml", "watch", s, {}))
        finally:
            await server.cleanup()
        return reports

    return asyncio.run(scenario())


def test_first_run_asks_the_lookback_in_pieces_then_only_the_tail() -> None:
    api = FakeRangeApi(daily)
    later = START + dt.timedelta(minutes=5)
    first, second = runs(api, [START, later])
    end = START.timestamp()
    pieces = [a for a in api.asks if a[1] <= end]
    assert len(pieces) == 3  # 20,160 one-minute points, at most 10,000 per query
    assert pieces[0][0] == end - 14 * DAY
    assert all((hi - lo) / step + 1 <= 10_000 for lo, hi, step, _ in pieces)
    tail = api.asks[3:]
    assert len(tail) == 1
    assert tail[0][0] == end - 3 * 60  # the last three steps again, then the new ones
    assert tail[0][1] == later.timestamp()
    for report in (first, second):
        (outcome,) = report.anomalies
        assert outcome.state == "Normal", outcome.message
        assert outcome.lower is not None
        assert outcome.upper is not None
        assert outcome.lower < outcome.value < outcome.upper  # type: ignore[operator]
    assert second.anomalies[0].points == first.anomalies[0].points  # the window slid


def test_a_spike_is_anomalous_with_its_band_and_recovers_after_for() -> None:
    spike_from = START.timestamp() - 20 * 60

    def spiky(t: float) -> float:
        return daily(t) + (200 if spike_from <= t <= spike_now["until"] else 0)

    spike_now = {"until": math.inf}
    api = FakeRangeApi(spiky)
    reports = runs(api, [START], **{"for": "10m"})
    (outcome,) = reports[0].anomalies
    assert outcome.state == "Anomalous"
    assert "outside band [" in outcome.message
    assert "since" in outcome.message
    assert outcome.since == spike_from
    verdict = decide(reports[0], {}, generation=1, now=START)
    cond = next(c for c in verdict.conditions if c.type == "Anomalous")
    assert cond.status == "True"
    assert cond.reason == "AnomalyDetected"
    assert [e.reason for e in verdict.events] == ["AnomalyDetected"]
    assert verdict.status_patch["anomalies"][0]["state"] == "Anomalous"
    assert verdict.phase.value == "Healthy"  # a signal, not a verdict: no phase of its own

    # it stops at START; five minutes later it is still open (recovery needs `for`), at
    # fifteen it has recovered
    spike_now["until"] = START.timestamp()
    api2 = FakeRangeApi(spiky)
    five, fifteen = runs(
        api2, [START + dt.timedelta(minutes=5), START + dt.timedelta(minutes=15)], **{"for": "10m"}
    )
    assert five.anomalies[0].state == "Anomalous"
    assert "back inside" in five.anomalies[0].message
    assert fifteen.anomalies[0].state == "Normal"
    old = decide(reports[0], {}, generation=1, now=START).status_patch
    back = decide(fifteen, old, generation=1, now=START)
    cond = next(c for c in back.conditions if c.type == "Anomalous")
    assert (cond.status, cond.reason) == ("False", "NoAnomaly")


def test_warm_up_and_missing_data_are_never_anomalies() -> None:
    young = START.timestamp() - 1.5 * DAY  # the series exists for a day and a half

    api = FakeRangeApi(lambda t: 1e6 if t >= young else None)
    (report,) = runs(api, [START])
    assert report.anomalies[0].state == "WarmingUp"
    cond = next(
        c for c in decide(report, {}, generation=1, now=START).conditions if c.type == "Anomalous"
    )
    assert (cond.status, cond.reason) == ("Unknown", "InsufficientData")

    stopped = START.timestamp() - 3600  # the series stopped an hour ago, wildly
    api = FakeRangeApi(lambda t: daily(t) if t < stopped - 600 else (1e6 if t < stopped else None))
    (report,) = runs(api, [START])
    assert report.anomalies[0].state == "NoData"
    assert "no value since" in report.anomalies[0].message


def test_a_query_with_several_series_is_refused_and_keeps_the_verdict() -> None:
    api = FakeRangeApi(daily, n_series=2)
    (report,) = runs(api, [START])
    assert report.anomalies[0].state == "Unavailable"
    assert report.problems[0].reason == "PrometheusQueryFailed"
    assert "aggregate it" in report.problems[0].message
    previous = {
        "conditions": [
            {
                "type": "Anomalous",
                "status": "True",
                "reason": "AnomalyDetected",
                "message": "p95: 9 outside band [1, 2]",
            }
        ]
    }
    verdict = decide(report, previous, generation=1, now=START)
    assert not any(c.type == "Anomalous" for c in verdict.conditions)  # kept as it was
    assert verdict.phase.value == "Degraded"


def test_sli_templates_render_one_series() -> None:
    api = FakeRangeApi(lambda t: 0.01)
    (report,) = runs(
        api,
        [START],
        query=None,
        sli="errorRatio",
        template={"name": "mlserver", "model": "iris"},
        lookback="3d",
        step="5m",
    )
    query = api.asks[0][3]
    assert query.startswith('(sum(increase(model_infer_request_failure_total{model="iris"}[5m]))')
    assert report.anomalies[0].state == "Normal"


@pytest.mark.parametrize(
    ("anomaly", "message"),
    [
        ({"name": "a"}, "exactly one of query or sli"),
        ({"name": "a", "query": "x", "sli": "latency"}, "exactly one of query or sli"),
        ({"name": "a", "sli": "latency"}, "template"),
        ({"name": "a", "query": "x", "template": {"name": "mlserver"}}, "only used with sli"),
        ({"name": "a", "sli": "traffic", "template": {"name": "kserve"}}, "kserve"),
        ({"name": "a", "query": "x", "step": "5s"}, "between 10s and 1h"),
        ({"name": "a", "query": "x", "step": "10s", "lookback": "14d"}, "20,160"),
        ({"name": "a", "query": "x", "lookback": "2d"}, "warmupCycles + 1"),
        ({"name": "a", "query": "x", "seasons": ["1d", "1d"]}, "twice"),
        ({"name": "a", "query": "x", "seasons": ["30m"]}, "between 1h and 28d"),
        ({"name": "a", "query": "x", "sensitivity": 0}, "sensitivity"),
        ({"name": "a", "query": "x", "percentile": 99}, "only used with sli latency"),
    ],
)
def test_bad_anomaly_specs_are_refused(anomaly: dict[str, Any], message: str) -> None:
    base = {
        "target": {"name": "m", "kind": "External", "endpoint": {"url": "http://m"}},
        "reference": {"inline": [{"x": 1}]},
        "prometheus": {"url": "http://p:9090"},
        "anomalies": [anomaly],
    }
    with pytest.raises(SpecError, match=r"spec\.anomalies") as err:
        parse_spec(base)
    assert message in str(err.value)


def test_anomalies_need_prometheus_and_unique_names() -> None:
    base = {
        "target": {"name": "m", "kind": "External", "endpoint": {"url": "http://m"}},
        "reference": {"inline": [{"x": 1}]},
        "anomalies": [{"name": "a", "query": "x"}, {"name": "a", "query": "y"}],
    }
    with pytest.raises(SpecError) as err:
        parse_spec(base)
    assert "spec.prometheus: is required when spec.anomalies is set" in str(err.value)
    assert "duplicate series 'a'" in str(err.value)


def test_the_cache_is_bounded_and_drops_a_series_asked_differently() -> None:
    import numpy as np

    from modelmonitor.sources.anomaly_cache import CachedSeries

    cache = SeriesCache(max_series=2)
    entry = CachedSeries(("u", "q", "60"), np.zeros(1), np.zeros(1), 0.0)
    for name in ("a", "b", "c"):
        cache.put(("ns", "m", name), entry)
    assert len(cache) == 2
    assert cache.get(("ns", "m", "a"), entry.fingerprint) is None  # least recently used
    assert cache.get(("ns", "m", "c"), ("u", "other query", "60")) is None
    assert cache.get(("ns", "m", "c"), entry.fingerprint) is None  # dropped with it
    cache.forget("ns", "m")
    assert len(cache) == 0


def test_a_hostile_answer_cannot_blow_up_the_detector() -> None:
    """Points the server was not asked for (far in the future, or more than the range
    holds) are dropped or refused: never a grid of astronomical size."""

    class Hostile(FakeRangeApi):
        async def handle(self, request: web.Request) -> web.Response:
            form = await request.post()
            start = float(form["start"])
            values = [[start, "1"], [1e15, "1"], [-1e15, "2"]]
            result = [{"metric": {}, "values": values}]
            return web.json_response(
                {"status": "success", "data": {"resultType": "matrix", "result": result}}
            )

    (report,) = runs(Hostile(daily), [START])
    assert report.anomalies[0].state == "WarmingUp"  # the one real point, nothing else
    assert report.problems == ()

    class Flood(FakeRangeApi):
        async def handle(self, request: web.Request) -> web.Response:
            form = await request.post()
            start = float(form["start"])
            values = [[start, "1"]] * 20_000
            result = [{"metric": {}, "values": values}]
            return web.json_response(
                {"status": "success", "data": {"resultType": "matrix", "result": result}}
            )

    (report,) = runs(Flood(daily), [START])
    assert report.anomalies[0].state == "Unavailable"
    assert report.problems[0].reason == "PrometheusQueryFailed"
    assert "points for a range of" in report.problems[0].message
