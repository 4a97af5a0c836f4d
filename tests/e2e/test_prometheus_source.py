"""The Prometheus client against a real Prometheus (Debian's package; no cluster needed).

Prometheus scrapes itself every second, so its own metrics (``up``,
``prometheus_build_info``, ``prometheus_http_requests_total`` ...) are the data.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from modelmonitor.slo import (
    EventCounts,
    counts_from_values,
    evaluate_error_ratio,
    required_windows,
    scale_alerts,
)
from modelmonitor.sources.prometheus import (
    NoData,
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnavailable,
)
from modelmonitor.sources.sli_templates import (
    TEMPLATES,
    TemplateError,
    render_error_ratio,
    render_latency,
    render_window,
)
from tests.prometheus import PrometheusServer, running_prometheus

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def ask(url: str, promql: str) -> float | NoData:
    async with PrometheusClient(url, timeout_seconds=5) as prom:
        return await prom.query_value(promql)


@pytest.fixture
def scraped(prometheus: PrometheusServer) -> PrometheusServer:
    """The session Prometheus, once it has scraped itself at least twice."""
    prometheus.wait_for('count_over_time(up{job="prometheus"}[1m]) >= 2', timeout=30)
    return prometheus


def test_instant_query_of_own_metrics(scraped: PrometheusServer) -> None:
    async def main() -> None:
        async with PrometheusClient(scraped.url) as prom:
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
        async with PrometheusClient(scraped.url) as prom:
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
    """No model server is scraped here: every query must parse and come back empty or 0."""

    async def main() -> None:
        async with PrometheusClient(scraped.url) as prom:
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
                    assert isinstance(value, NoData) or value == 0.0, (name, q, value)

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
        async with PrometheusClient(scraped.url) as prom:
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
