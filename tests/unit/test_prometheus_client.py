"""The Prometheus client against answers a real Prometheus cannot be made to send.

Everything Prometheus does send (results, NoData, NaN, bad PromQL, a stopped server)
is tested against the real server in tests/e2e/test_prometheus_source.py. Here a tiny
local aiohttp server stands in only for what a real Prometheus never answers: broken
JSON, a wrong result shape, a proxy's HTML error page, a wrong URL, an answer slower
than the timeout, and warnings on demand. The SLI templates' pure rendering is checked
at the end.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from aiohttp import web

from modelmonitor.core.spec import parse_spec
from modelmonitor.sources.prometheus import (
    NoData,
    PrometheusClient,
    PrometheusQueryError,
    PrometheusResponseError,
    PrometheusUnavailable,
)
from modelmonitor.sources.sli_templates import (
    TemplateError,
    get_template,
    has_window,
    le_pattern,
    render_error_ratio,
    render_latency,
    render_window,
    slo_window_queries,
)
from tests.unit.loopback import LOOPBACK_ALLOWED

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def serve_and_query(handler: Handler, call: Callable[[PrometheusClient], Awaitable[T]]) -> T:
    """Start a one-route server answering every path with ``handler``; run ``call``."""

    async def main() -> T:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with PrometheusClient(
                f"http://127.0.0.1:{port}", timeout_seconds=0.5, fence=LOOPBACK_ALLOWED
            ) as c:
                return await call(c)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def answer(body: Any, status: int = 200, content_type: str = "application/json") -> Handler:
    async def handler(request: web.Request) -> web.Response:
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(text=text, status=status, content_type=content_type)

    return handler


def success(data: Any, **extra: Any) -> dict[str, Any]:
    return {"status": "success", "data": data, **extra}


def test_not_json_is_a_response_error() -> None:
    with pytest.raises(PrometheusResponseError, match="not a Prometheus API response"):
        serve_and_query(answer("<html>hello</html>", content_type="text/html"), _value)


def test_missing_data_is_a_response_error() -> None:
    with pytest.raises(PrometheusResponseError, match="no data object"):
        serve_and_query(answer({"status": "success"}), _value)


def test_unusable_result_type() -> None:
    body = success({"resultType": "string", "result": [1, "x"]})
    with pytest.raises(PrometheusResponseError, match="result type 'string'"):
        serve_and_query(answer(body), _value)


def test_sample_value_must_be_a_string() -> None:
    body = success({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, 3]}]})
    with pytest.raises(PrometheusResponseError, match="malformed"):
        serve_and_query(answer(body), _value)


def test_range_result_must_be_a_matrix() -> None:
    body = success({"resultType": "vector", "result": []})

    async def call(c: PrometheusClient) -> object:
        return await c.query_range("up", start=0, end=10, step_seconds=1)

    with pytest.raises(PrometheusResponseError, match="expected a matrix"):
        serve_and_query(answer(body), call)


def test_proxy_error_page_is_unavailable() -> None:
    with pytest.raises(PrometheusUnavailable, match="HTTP 502"):
        serve_and_query(answer("Bad Gateway", status=502, content_type="text/plain"), _value)


def test_wrong_url_is_a_response_error() -> None:
    with pytest.raises(PrometheusResponseError, match="is this a Prometheus URL"):
        serve_and_query(answer("404 page not found", status=404, content_type="text/plain"), _value)


def test_slow_answer_is_unavailable() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="{}")

    with pytest.raises(PrometheusUnavailable, match=r"did not answer within 0\.5s"):
        serve_and_query(slow, _value)


def test_query_timeout_answer_is_unavailable() -> None:
    # Prometheus answers 503 {"errorType": "timeout"} when evaluation exceeds the timeout.
    body = {"status": "error", "errorType": "timeout", "error": "query timed out"}
    with pytest.raises(PrometheusUnavailable, match="query timed out"):
        serve_and_query(answer(body, status=503), _value)


def test_request_is_a_form_post_with_timeout_and_time() -> None:
    seen: dict[str, str] = {}

    async def record(request: web.Request) -> web.Response:
        seen.update({k: str(v) for k, v in (await request.post()).items()})
        seen["path"] = request.path
        body = success({"resultType": "vector", "result": []}, warnings=["a warning"])
        return web.json_response(body)

    async def call(c: PrometheusClient) -> object:
        return await c.query("up", at=1700000000.5)

    result = serve_and_query(record, call)
    assert seen == {
        "query": "up",
        "timeout": "0.5s",
        "time": "1700000000.500",
        "path": "/api/v1/query",
    }
    assert result.warnings == ("a warning",)  # type: ignore[attr-defined]
    assert isinstance(result.value(), NoData)  # type: ignore[attr-defined]


def test_ambiguous_result_names_the_fix() -> None:
    sample = {"metric": {"a": "1"}, "value": [1.0, "1"]}
    body = success({"resultType": "vector", "result": [sample, sample]})
    with pytest.raises(PrometheusQueryError, match=r"2 series.*sum\(\.\.\.\)"):
        serve_and_query(answer(body), _value)


def test_closed_port_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends

    async def main() -> object:
        async with PrometheusClient(f"http://127.0.0.1:{port}", fence=LOOPBACK_ALLOWED) as c:
            return await c.query_value("up")

    with pytest.raises(PrometheusUnavailable, match="unreachable"):
        asyncio.run(main())


def test_client_validates_its_settings() -> None:
    with pytest.raises(ValueError, match="http"):
        PrometheusClient("prometheus:9090")
    with pytest.raises(ValueError, match="timeout"):
        PrometheusClient("http://p:9090", timeout_seconds=0)


async def _value(c: PrometheusClient) -> object:
    return await c.query_value("up")


# -- SLI templates: pure rendering (their PromQL is run on a real Prometheus in e2e) ----------


def test_template_rendering_per_window() -> None:
    q = render_error_ratio("seldon", window_seconds=5 / 12 * 60, model="iris")
    assert q.errors == (
        'sum(increase(seldon_model_infer_total{model="iris",code!~"2..|OK"}[25s])) or vector(0)'
    )
    assert q.total == 'sum(increase(seldon_model_infer_total{model="iris"}[25s]))'
    assert (
        render_window("rate(x[$window]) / rate(y[${window}])", 3600) == "rate(x[1h]) / rate(y[1h])"
    )
    assert has_window("increase(x[$window])")
    assert not has_window("increase(x[5m])")


def test_template_label_values_are_escaped_and_names_checked() -> None:
    q = render_error_ratio("mlserver", window_seconds=60, model='a"b\\c')
    assert 'model="a\\"b\\\\c"' in q.errors
    with pytest.raises(TemplateError, match="label name"):
        render_error_ratio("mlserver", window_seconds=60, labels={"bad-name": "x"})


def test_window_in_a_label_value_is_kept_verbatim() -> None:
    # only the placeholder in PromQL is a window; a label value the user wrote is data
    q = render_error_ratio(
        "seldon",
        window_seconds=300,
        model="${window}",
        labels={"pod": "$window", "team": "{selector}", "ns": "{selector_and}"},
    )
    selector = 'model="${window}",ns="{selector_and}",pod="$window",team="{selector}"'
    assert q.total == f"sum(increase(seldon_model_infer_total{{{selector}}}[5m]))"
    assert q.errors.startswith(
        f'sum(increase(seldon_model_infer_total{{{selector},code!~"2..|OK"}}[5m]))'
    )
    own = 'rate(x{a="$window",b=\'${window}\',c=`$window`,d="\\"$window"}[$window])'
    assert render_window(own, 60) == (
        'rate(x{a="$window",b=\'${window}\',c=`$window`,d="\\"$window"}[1m])'
    )
    assert not has_window('rate(x{job="$window"}[5m])')
    assert has_window('rate(x{job="$window"}[$window])')


def test_latency_bucket_bound_spellings() -> None:
    assert le_pattern(0.25) == "0[.]25"
    assert le_pattern(1.0) == "1|1[.]0"  # Go writes 1, Python 1.0
    lat = render_latency("kserve", percentile=99, threshold_ms=1000, window_seconds=300, model="m")
    assert lat.percentile == (
        "histogram_quantile(0.99, sum by (le) "
        '(rate(request_predict_seconds_bucket{model_name="m"}[5m])))'
    )
    assert (
        lat.fast
        == 'sum(increase(request_predict_seconds_bucket{model_name="m",le=~"1|1[.]0"}[5m]))'
    )


def test_unknown_template_and_missing_sli() -> None:
    with pytest.raises(TemplateError, match="expected one of kserve, mlserver, seldon"):
        get_template("triton")
    with pytest.raises(TemplateError, match="no error-ratio SLI"):
        render_error_ratio("kserve", window_seconds=60)


def test_slo_window_queries_template_and_own_promql() -> None:
    spec = parse_spec(
        {
            "target": {"name": "m"},
            "reference": {"configMapRef": {"name": "r", "key": "k"}},
            "prometheus": {"url": "http://p:9090"},
            "slos": [
                {
                    "name": "a",
                    "source": "prometheus",
                    "template": {"name": "mlserver", "model": "iris"},
                    "errorRatio": {},
                },
                {
                    "name": "b",
                    "source": "prometheus",
                    "errorRatio": {"errors": "sum(rate(e[5m]))", "total": "sum(rate(t[5m]))"},
                },
                {
                    "name": "c",
                    "source": "prometheus",
                    "latency": {"thresholdMs": 300, "query": "q(x[$window])"},
                },
            ],
        }
    )
    a, b, c = (slo_window_queries(s, 3600) for s in spec.slos)
    assert a.per_window
    assert a.errors is not None
    assert "[1h]" in a.errors
    assert not b.per_window  # no $window: one answer per run, kept in the history
    assert b.errors == "sum(rate(e[5m]))"
    assert c.per_window
    assert c.percentile == "q(x[1h])"
    assert c.fast is None  # own latency PromQL: the percentile only
