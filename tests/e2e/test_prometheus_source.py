"""The Prometheus client against a real Prometheus (Debian's package; no cluster needed).

Prometheus scrapes itself every second, so its own metrics (``up``,
``prometheus_build_info``, ``prometheus_http_requests_total`` ...) are the data; the
template test also has it scrape the real MLServer of the ``model_server`` fixture.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from modelmonitor.adapters.outbound import Outbound
from modelmonitor.core.outbound import OutboundPolicy
from modelmonitor.core.slo.budget import (
    EventCounts,
    counts_from_values,
    required_windows,
    scale_alerts,
)
from modelmonitor.core.slo.evaluation import SLOResult, evaluate_error_ratio
from modelmonitor.core.slo.history import EventHistory
from modelmonitor.core.spec import SLOSpec, parse_spec
from modelmonitor.sources.prometheus import (
    NoData,
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnavailable,
    evaluate_prometheus_slo,
)
from modelmonitor.sources.sli_templates import (
    TEMPLATES,
    TemplateError,
    render_error_ratio,
    render_latency,
    render_window,
)
from tests.modelserver import ModelServer
from tests.prometheus import PrometheusServer, ScrapeTarget, running_prometheus

# Prometheus and the model servers listen on 127.x; the operator refuses loopback unless
# its allowlist opens it, as the e2e operator's OUTBOUND_ALLOW_CIDRS does.
LOOPBACK = Outbound(OutboundPolicy.parse(["127.0.0.0/8"]))

T = TypeVar("T")
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def ask(url: str, promql: str) -> float | NoData:
    async with PrometheusClient(url, timeout_seconds=5, fence=LOOPBACK) as prom:
        return await prom.query_value(promql)


@pytest.fixture
def scraped(prometheus: PrometheusServer) -> PrometheusServer:
    """The session Prometheus, once it has scraped itself at least twice."""
    prometheus.wait_for('count_over_time(up{job="prometheus"}[1m]) >= 2', timeout=30)
    return prometheus


def test_instant_query_of_own_metrics(scraped: PrometheusServer) -> None:
    async def main() -> None:
        async with PrometheusClient(scraped.url, fence=LOOPBACK) as prom:
            up = await prom.query('up{job="prometheus"}')
            assert up.result_type == "vector"
            assert len(up.samples) == 1
            assert up.samples[0].labels["job"] == "prometheus"
            assert up.value() == 1.0
            info = await prom.query("prometheus_build_info")
            assert info.samples[0].labels["version"].startswith("2.")
            assert await prom.query_value("count(prometheus_build_info)") == 1.0
            assert await prom.query_value("scalar(vector(2.5))") == 2.5  # a scalar result

    run(main())


def test_range_query_of_own_metrics(scraped: PrometheusServer) -> None:
    async def main() -> None:
        end = time.time()
        async with PrometheusClient(scraped.url, fence=LOOPBACK) as prom:
            result = await prom.query_range(
                'up{job="prometheus"}', start=end - 10, end=end, step_seconds=1
            )
        assert len(result.series) == 1
        values = result.values()
        assert not isinstance(values, NoData)
        assert len(values) >= 2
        assert set(values) == {1.0}
        timestamps = [t for t, _ in result.series[0].points]
        assert timestamps == sorted(timestamps)

    run(main())


def test_bad_promql_is_a_query_error_with_prometheus_message(scraped: PrometheusServer) -> None:
    with pytest.raises(PrometheusQueryError) as info:
        run(ask(scraped.url, "sum(rate(up[5m])"))
    assert info.value.error_type == "bad_data"
    assert "parse error" in str(info.value)
    assert "sum(rate(up[5m])" in str(info.value)  # the query is named


def test_execution_error_is_a_query_error(scraped: PrometheusServer) -> None:
    # Matching a series with itself on one label only: many-to-many, refused at run time.
    promql = "prometheus_http_requests_total + on(job) group_left() prometheus_http_requests_total"
    with pytest.raises(PrometheusQueryError) as info:
        run(ask(scraped.url, promql))
    assert "many" in str(info.value)


def test_empty_result_is_no_data(scraped: PrometheusServer) -> None:
    result = run(ask(scraped.url, 'up{job="no-such-job"}'))
    assert isinstance(result, NoData)
    assert not result  # falsy: never a pass
    assert "no data" in result.reason
    assert isinstance(run(ask(scraped.url, 'sum(up{job="no-such-job"})')), NoData)


def test_nan_is_no_data_and_inf_is_a_value(scraped: PrometheusServer) -> None:
    nan = run(ask(scraped.url, "vector(0) / vector(0)"))
    assert isinstance(nan, NoData)
    assert "NaN" in nan.reason
    assert run(ask(scraped.url, "vector(1) / vector(0)")) == math.inf


def test_several_series_need_aggregation(scraped: PrometheusServer) -> None:
    scraped.wait_for("count(prometheus_http_requests_total) > 1")
    with pytest.raises(PrometheusQueryError, match="aggregate"):
        run(ask(scraped.url, "prometheus_http_requests_total"))


def test_stopped_server_is_unavailable() -> None:
    with running_prometheus("stopped") as prom:
        assert run(ask(prom.url, "vector(1)")) == 1.0
        prom.stop()
        with pytest.raises(PrometheusUnavailable, match="unreachable"):
            run(ask(prom.url, "vector(1)"))
        prom.start()  # and back
        assert run(ask(prom.url, "vector(1)")) == 1.0


def test_every_template_query_is_valid_promql(scraped: PrometheusServer) -> None:
    """Every query parses and evaluates: no data, or a finite number (the session's
    Prometheus may be scraping a model server for another test)."""

    async def main() -> None:
        async with PrometheusClient(scraped.url, fence=LOOPBACK) as prom:
            for name in TEMPLATES:
                queries: list[str] = []
                try:
                    er = render_error_ratio(
                        name, window_seconds=300, model="iris", labels={"namespace": "ml"}
                    )
                    queries += [er.errors, er.total]
                except TemplateError:
                    assert name == "kserve"  # no error counter
                lat = render_latency(
                    name, percentile=95, threshold_ms=250, window_seconds=300, model="iris"
                )
                queries += [lat.percentile, lat.fast, lat.total]
                for q in queries:
                    value = await prom.query_value(q)
                    assert isinstance(value, NoData) or math.isfinite(value), (name, q, value)

    run(main())


def test_burn_rates_from_prometheus_counters(scraped: PrometheusServer) -> None:
    """The pieces together: per-window counts from PromQL -> SLO verdict.

    Prometheus' own HTTP API counters are the SLI (5xx answers are errors); the
    workbook windows are scaled by 1/720 (1 h -> 5 s) and the SLO window is 1 min.
    """
    errors = 'sum(increase(prometheus_http_requests_total{code=~"5.."}[$window])) or vector(0)'
    total = "sum(increase(prometheus_http_requests_total[$window]))"
    alerts = scale_alerts(1 / 720)
    slo_window = 60.0
    scraped.wait_for(f"{render_window(total, 30)} > 0")

    async def main() -> dict[float, EventCounts | None]:
        windows: dict[float, EventCounts | None] = {}
        async with PrometheusClient(scraped.url, fence=LOOPBACK) as prom:
            for w in required_windows(slo_window, alerts):
                # Windows under two scrapes (1 s apart) have no increase to show.
                e = await prom.query_value(render_window(errors, max(w, 3)))
                t = await prom.query_value(render_window(total, max(w, 3)))
                windows[w] = counts_from_values(
                    None if isinstance(e, NoData) else e, None if isinstance(t, NoData) else t
                )
        return windows

    windows = run(main())
    result = evaluate_error_ratio(
        "api", objective=99, slo_window_seconds=slo_window, windows=windows, alerts=alerts
    )
    assert result.met is True, result.message
    assert result.budget_remaining == pytest.approx(1.0)
    assert result.to_dict()["burnRates"]["5s"] == 0.0


def _spec_slos(url: str, *slos: dict[str, Any]) -> tuple[SLOSpec, ...]:
    spec = parse_spec(
        {
            "target": {"name": "m"},
            "reference": {"configMapRef": {"name": "r", "key": "k"}},
            "prometheus": {"url": url},
            "slos": list(slos),
        }
    )
    return spec.slos


def test_evaluate_slo_with_own_queries(scraped: PrometheusServer) -> None:
    """Per-window PromQL ($window) and once-per-run PromQL (kept in the history)."""
    (windowed, fixed) = _spec_slos(
        scraped.url,
        {
            "name": "api",
            "source": "prometheus",
            "objective": 99,
            "window": "1m",
            "burnRate": {"windowScale": 1 / 720},
            "errorRatio": {
                "errors": 'sum(increase(prometheus_http_requests_total{code=~"5.."}[$window]))',
                "total": "sum(increase(prometheus_http_requests_total[$window]))",
            },
        },
        {
            "name": "api-fixed",
            "source": "prometheus",
            "objective": 99,
            "window": "1m",
            "errorRatio": {
                "errors": 'sum(rate(prometheus_http_requests_total{code=~"5.."}[30s]))',
                "total": "sum(rate(prometheus_http_requests_total[30s]))",
            },
        },
    )
    # The fixed query is a rate (events per second) and a verdict needs at least one
    # event in the window: give Prometheus' API more than a trickle of requests first.
    deadline = time.monotonic() + 60
    while not scraped.query("sum(rate(prometheus_http_requests_total[30s])) > 2"):
        for _ in range(20):
            scraped.query("vector(1)")
        assert time.monotonic() < deadline, "Prometheus' own request rate stays below 2/s"
        time.sleep(0.5)

    async def main() -> tuple[SLOResult, SLOResult, EventHistory | None]:
        async with PrometheusClient(scraped.url, fence=LOOPBACK) as prom:
            a, none = await evaluate_prometheus_slo(
                prom, windowed, now=time.time(), min_window_seconds=3
            )
            assert none is None  # per-window queries keep no history
            b, history = await evaluate_prometheus_slo(prom, fixed, now=time.time())
            return a, b, history

    a, b, history = run(main())
    # No 5xx from Prometheus' own API: met, nothing burning (a missing 5xx series is 0).
    assert a.met is True, a.message
    assert a.to_dict()["burnRates"]["5s"] == 0.0
    assert b.met is True, b.message
    assert history is not None
    assert len(history) == 1  # this run's answer, for the next run to build on


def test_unreachable_prometheus_raises_from_slo_evaluation() -> None:
    with running_prometheus("slo-stopped") as prom:
        (slo,) = _spec_slos(
            prom.url,
            {
                "name": "x",
                "source": "prometheus",
                "template": {"name": "mlserver"},
                "errorRatio": {},
            },
        )
        prom.stop()

        async def main() -> None:
            async with PrometheusClient(prom.url, timeout_seconds=2, fence=LOOPBACK) as client:
                await evaluate_prometheus_slo(client, slo, now=time.time())

        with pytest.raises(PrometheusUnavailable):
            run(main())


def _infer(url: str, model: str) -> int:
    body = json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
            ]
        }
    ).encode()
    request = urllib.request.Request(
        f"{url}/v2/models/{model}/infer", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_mlserver_template_on_real_mlserver(
    prometheus: PrometheusServer, model_server: ModelServer
) -> None:
    """The mlserver template against MLServer's own metrics, scraped by Prometheus.

    ``iris`` answers every request; ``iris-flaky`` fails every second one (50 % errors:
    burn rate 50 against a 1 % budget, so the page alert fires). Windows are scaled by
    1/720 and asked over at least 5 s (two scrapes and more), while traffic flows.
    """
    address = model_server.metrics_url.split("//", 1)[1].split("/", 1)[0]
    prometheus.add_target(ScrapeTarget("mlserver", address))
    prometheus.wait_for('up{job="mlserver"} == 1')
    iris, flaky, latency = _spec_slos(
        prometheus.url,
        *(
            {
                "name": name,
                "source": "prometheus",
                "objective": 99,
                "window": "1m",
                "burnRate": {"windowScale": 1 / 720},
                "template": {"name": "mlserver", **({"model": model} if model else {})},
                **({"errorRatio": {}} if model else {"latency": {"thresholdMs": 250}}),
            }
            for name, model in (("iris", "iris"), ("flaky", "iris-flaky"), ("p95", None))
        ),
    )
    stop = threading.Event()
    codes: dict[str, list[int]] = {"iris": [], "iris-flaky": []}

    def traffic() -> None:
        while not stop.is_set():
            for model, seen in codes.items():
                seen.append(_infer(model_server.url, model))
            time.sleep(0.05)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        prometheus.wait_for(
            'sum(increase(model_infer_request_failure_total{model="iris-flaky"}[5s])) > 0'
        )
        time.sleep(3)

        async def main() -> list[SLOResult]:
            results = []
            async with PrometheusClient(prometheus.url, fence=LOOPBACK) as prom:
                for slo in (iris, flaky, latency):
                    result, _ = await evaluate_prometheus_slo(
                        prom, slo, now=time.time(), min_window_seconds=5
                    )
                    results.append(result)
            return results

        ok, bad, lat = run(main())
    finally:
        stop.set()
        sender.join(timeout=10)
    assert set(codes["iris"]) == {200}
    assert set(codes["iris-flaky"]) == {200, 503}

    assert ok.burn_rate(5.0) == 0.0, ok.message
    assert not [a for a in ok.firing if a.alert.severity == "page"]

    assert bad.met is False
    assert bad.reason == "BurnRateTooHigh"
    assert bad.burn_rate(5.0) == pytest.approx(50.0, rel=0.25)  # 50 % errors / 1 % budget
    assert "page" in {a.alert.severity for a in bad.firing}

    # Server-wide REST latency of fast requests: well under 250 ms (a bucket boundary).
    assert lat.met is True, lat.message
    assert lat.value is not None
    assert 0 < lat.value < 250
    assert lat.message.startswith("p95 latency ")
    assert lat.burn_rate(5.0) == 0.0
