"""The outbound fence attacked through the operator's real clients and real local servers.

A hostile monitor names a URL; these tests make that URL redirect to another host, to the
metadata service, to loopback; carry secrets in its userinfo and query; answer 200 MB.
Each rule is checked where a user would see its effect: the reference loader's error,
the probe's result, the Prometheus client's error, the webhook's result.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from modelmonitor.actions.notify import execute_notify, fenced_post
from modelmonitor.adapters.outbound import BufferBusy, ByteBudget, Outbound, OutboundRefused
from modelmonitor.core.dataset import Dataset
from modelmonitor.core.incident import Outcome
from modelmonitor.core.outbound import OutboundPolicy, ResponseLimits
from modelmonitor.core.spec import ReferenceSpec
from modelmonitor.sources.probe import ProbeConfig, probe
from modelmonitor.sources.probe_result import OPERATOR_BUSY, OUTBOUND_REFUSED, ErrorKind
from modelmonitor.sources.prometheus import (
    PrometheusClient,
    PrometheusRefused,
    PrometheusResponseError,
    PrometheusUnavailable,
)
from modelmonitor.sources.reference import ReferenceCache, ReferenceLoadError
from tests.unit.actions.test_notify import api_with_url, make_request, make_spec
from tests.unit.loopback import LOOPBACK_ALLOWED
from tests.webhook import WebhookRecorder

CSV = b"amount,country\n1.5,de\n2.5,fr\n3.5,de\n"
HUGE = 200 * 1024 * 1024  # what the hostile server offers
CHUNK = b"x" * (1024 * 1024)


class Objects:
    def get(self, kind: str, namespace: str, name: str) -> None:
        return None


@dataclass
class Server:
    """A real aiohttp server on 127.0.0.1 with the routes an attacker would set up."""

    base: str = ""
    port: int = 0
    hits: list[str] = field(default_factory=list)
    streamed: int = 0  # bytes of the huge body the server managed to write
    aborted: bool = False  # the client hung up before the huge body was all sent
    redirects: dict[str, str] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path_qs)
        name = request.match_info["name"].split("/", 1)[0]  # Prometheus adds /api/v1/...
        if name in self.redirects:
            raise web.HTTPFound(self.redirects[name])
        if name == "ref.csv":
            return web.Response(body=CSV)
        if name == "mid":  # 200 KiB, declared
            return web.Response(body=b"[" + b"1," * (100 << 10) + b"1]")
        if name in ("huge", "huge-declared"):
            return await self._huge(request, declared=name == "huge-declared")
        if name == "error":
            hostile = "boom\x1b[31m\r\n" + "<script>" * 5000
            return web.json_response({"status": "error", "error": hostile}, status=503)
        return web.Response(status=404, text="secret page content " * 1000)

    async def _huge(self, request: web.Request, *, declared: bool) -> web.StreamResponse:
        resp = web.StreamResponse()
        if declared:
            resp.content_length = HUGE
        await resp.prepare(request)
        try:
            while self.streamed < HUGE:
                await resp.write(CHUNK)
                self.streamed += len(CHUNK)
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.aborted = True
            raise
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
    server.port = runner.addresses[0][1]
    server.base = f"http://127.0.0.1:{server.port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def run(scenario: Callable[[Server], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with serving() as server:
            return await scenario(server)

    return asyncio.run(main())


async def load_url(url: str, outbound: Outbound, **kw: Any) -> Any:
    cache = ReferenceCache(Objects(), outbound=outbound, http_timeout=10, **kw)  # type: ignore[arg-type]
    return await cache.load("ml", "m", ReferenceSpec(source="url", url=url))


def fence(*allow: str, limits: ResponseLimits | None = None, **kw: Any) -> Outbound:
    return Outbound(OutboundPolicy.parse(allow, **kw), limits)


# -- addresses ----------------------------------------------------------------------------------


def test_loopback_is_refused_without_the_allowlist_and_nothing_is_sent() -> None:
    async def scenario(server: Server) -> ReferenceLoadError:
        with pytest.raises(ReferenceLoadError) as info:
            await load_url(f"{server.base}/ref.csv", Outbound())
        assert server.hits == []
        return info.value

    error = run(scenario)
    assert error.reason == "OutboundRefused"
    assert "outbound request to 127.0.0.1 refused: loopback address" in str(error)


def test_a_name_resolving_to_loopback_is_refused_too() -> None:
    async def scenario(server: Server) -> ReferenceLoadError:
        with pytest.raises(ReferenceLoadError) as info:
            await load_url(f"http://localhost:{server.port}/ref.csv", Outbound())
        assert server.hits == []
        return info.value

    error = run(scenario)
    assert error.reason == "OutboundRefused"
    assert "refused: loopback address" in str(error)


def test_the_allowlist_lets_loopback_through() -> None:
    async def scenario(server: Server) -> int:
        loaded = await load_url(f"{server.base}/ref.csv", fence("127.0.0.0/8"))
        return int(loaded.profile.n_rows)

    assert run(scenario) == 3


def test_the_metadata_address_is_refused_even_with_loopback_allowed() -> None:
    async def scenario(server: Server) -> ReferenceLoadError:
        with pytest.raises(ReferenceLoadError) as info:
            await load_url("http://169.254.169.254/latest/meta-data/", LOOPBACK_ALLOWED)
        return info.value

    error = run(scenario)
    assert error.reason == "OutboundRefused"
    assert "outbound request to 169.254.169.254 refused: link-local address" in str(error)


def test_the_api_server_is_refused_whatever_the_allowlist() -> None:
    async def scenario(server: Server) -> ReferenceLoadError:
        policy = OutboundPolicy.parse(["127.0.0.0/8"], [("127.0.0.1", server.port)])
        with pytest.raises(ReferenceLoadError) as info:
            await load_url(f"{server.base}/ref.csv", Outbound(policy))
        assert server.hits == []
        return info.value

    assert "refused: the Kubernetes API server" in str(run(scenario))


class _Rebinding(AbstractResolver):
    """A resolver that answers what an attacker's DNS would at connect time."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        return None


def test_the_address_connected_to_is_checked_not_only_a_name_lookup() -> None:
    """Whatever a resolver (or a rebinding DNS) answers, the socket factory refuses the
    address the socket would connect to."""
    strict = Outbound()

    async def scenario(server: Server) -> None:
        connector = aiohttp.TCPConnector(
            resolver=_Rebinding(),
            socket_factory=strict._socket_factory,  # what Outbound.session() installs
        )
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await strict.fetch(
                    session, "GET", f"http://rebind.example:{server.port}/ref.csv", cap=1024
                )
        assert isinstance(info.value.os_error, OutboundRefused)
        assert server.hits == []

    run(scenario)


# -- redirects ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("http://127.0.0.1:{other}/ref.csv", "to http://127.0.0.1:{other}/ref.csv refused"),
        ("http://169.254.169.254/latest/meta-data/iam", "to http://169.254.169.254/latest"),
        ("http://localhost:{port}/ref.csv", "to http://localhost:{port}/ref.csv refused"),
    ],
    ids=["another-port", "metadata", "another-host-name"],
)
def test_a_redirect_to_another_origin_is_not_followed(target: str, shown: str) -> None:
    async def scenario(server: Server) -> tuple[ReferenceLoadError, list[str], str]:
        async with serving() as other:
            url = target.format(other=other.port, port=server.port)
            server.redirects["go"] = url
            with pytest.raises(ReferenceLoadError) as info:
                await load_url(f"{server.base}/go", LOOPBACK_ALLOWED)
            return info.value, other.hits, shown.format(other=other.port, port=server.port)

    error, other_hits, expected = run(scenario)
    assert other_hits == []
    assert error.reason == "ReferenceUnavailable"
    assert expected in str(error)
    assert "another host" in str(error)


def test_a_redirect_to_loopback_without_the_allowlist_is_refused() -> None:
    """The first hop is public in production; here the target itself is refused."""

    async def scenario(server: Server) -> ReferenceLoadError:
        server.redirects["go"] = "/ref.csv"
        with pytest.raises(ReferenceLoadError) as info:
            await load_url(f"{server.base}/go", Outbound())
        return info.value

    assert run(scenario).reason == "OutboundRefused"


def test_same_origin_redirects_are_followed_up_to_the_limit() -> None:
    async def scenario(server: Server) -> tuple[int, ReferenceLoadError]:
        server.redirects.update({"a.csv": "/b.csv", "b.csv": "/ref.csv", "loop.csv": "/loop.csv"})
        loaded = await load_url(f"{server.base}/a.csv", LOOPBACK_ALLOWED)
        with pytest.raises(ReferenceLoadError) as info:
            await load_url(f"{server.base}/loop.csv", LOOPBACK_ALLOWED)
        return int(loaded.profile.n_rows), info.value

    rows, error = run(scenario)
    assert rows == 3
    assert "more than 3 redirects" in str(error)


def test_a_post_is_not_turned_into_a_get_by_a_redirect() -> None:
    async def scenario(server: Server) -> None:
        server.redirects["predict"] = "/ref.csv"
        config = ProbeConfig(url=server.base, protocol="json", path="/predict", retries=0)
        result = await probe(config, Dataset({"a": np.arange(2.0)}), outbound=LOOPBACK_ALLOWED)
        assert result.errors.count(ErrorKind.BAD_RESPONSE) == 2
        (message,) = result.errors.messages[ErrorKind.BAD_RESPONSE]
        assert "redirected with HTTP 302, which would drop the body" in message
        assert server.hits == ["/predict", "/predict"]

    run(scenario)


# -- secrets in URLs and bodies ---------------------------------------------------------------


SECRETS = ("s3cr3t-pass", "t0p-s3cret-token", "admin:", "secret page content")


def test_userinfo_and_query_never_reach_the_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario(server: Server) -> list[str]:
        messages = []
        for path, outbound in (
            ("missing.csv", LOOPBACK_ALLOWED),  # HTTP 404 with a body
            ("ref.csv", Outbound()),  # refused
        ):
            url = f"http://admin:s3cr3t-pass@127.0.0.1:{server.port}/{path}?key=t0p-s3cret-token"
            with pytest.raises(ReferenceLoadError) as info:
                await load_url(url, outbound)
            messages.append(str(info.value))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        url = f"http://admin:s3cr3t-pass@127.0.0.1:{closed}/x.csv?key=t0p-s3cret-token"
        with pytest.raises(ReferenceLoadError) as info:
            await load_url(url, LOOPBACK_ALLOWED)
        messages.append(str(info.value))
        return messages

    messages = run(scenario)
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("modelmonitor")]
    assert "http://127.0.0.1:" in messages[0]
    assert "/missing.csv?..." in messages[0]
    for text in [*messages, *logged]:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into {text!r}"


def test_prometheus_error_bodies_are_sanitized_and_capped() -> None:
    async def scenario(server: Server) -> str:
        url = f"http://u:s3cr3t-pass@127.0.0.1:{server.port}/error?key=t0p-s3cret-token"
        async with PrometheusClient(url, fence=LOOPBACK_ALLOWED) as client:
            with pytest.raises(PrometheusUnavailable) as info:
                await client.query_value("up")
        return str(info.value)

    message = run(scenario)
    assert message.isprintable()
    assert len(message) < 400
    assert "boom" in message
    for secret in SECRETS:
        assert secret not in message


def test_probe_error_messages_quote_bodies_short_and_printable() -> None:
    async def scenario(server: Server) -> list[str]:
        config = ProbeConfig(url=server.base, protocol="json", path="/error", retries=0)
        result = await probe(config, Dataset({"a": np.arange(1.0)}), outbound=LOOPBACK_ALLOWED)
        return [m for ms in result.errors.messages.values() for m in ms]

    (message,) = run(scenario)
    assert message.startswith("HTTP 503: boom")
    assert message.isprintable()
    assert len(message) <= 220


# -- refusals are reported, not crashes or SLO failures -------------------------------------------


def test_a_refused_probe_counts_no_request_so_no_slo_can_breach() -> None:
    async def scenario(server: Server) -> None:
        config = ProbeConfig(url=server.base, protocol="json", path="/predict", retries=2)
        result = await probe(config, Dataset({"a": np.arange(5.0)}), outbound=Outbound())
        assert result.failure == OUTBOUND_REFUSED
        assert "outbound request to 127.0.0.1 refused: loopback address" in result.failure_message
        assert result.n_requests == 0
        assert result.n_sent == 0
        assert server.hits == []

    run(scenario)


def test_a_refused_prometheus_is_its_own_error() -> None:
    async def scenario(server: Server) -> None:
        async with PrometheusClient(server.base) as client:  # the strict default
            with pytest.raises(PrometheusRefused, match="refused: loopback address"):
                await client.query_value("up")
        assert server.hits == []

    run(scenario)


def test_a_refused_webhook_is_not_retried_and_names_the_rule_not_the_url() -> None:
    with WebhookRecorder() as hook:
        url = hook.url_for("/hooks/T000/s3cr3t-pass")
        result = execute_notify(
            api_with_url(url), make_spec(), make_request(), sleep=lambda s: None
        )
        assert hook.requests == []
    assert result.outcome is Outcome.FAILED
    assert result.details == {
        "format": "json",
        "attempts": 1,
        "status": 0,
        "error": "OutboundRefused (loopback address)",
    }
    assert "s3cr3t-pass" not in result.message
    assert "127.0.0.1" not in result.message


def test_the_webhook_follows_no_redirect() -> None:
    async def scenario(server: Server) -> tuple[Any, list[str]]:
        server.redirects["hook"] = "/ref.csv"
        post = fenced_post(LOOPBACK_ALLOWED)
        result = await asyncio.to_thread(
            execute_notify,
            api_with_url(f"{server.base}/hook"),
            make_spec(),
            make_request(),
            post=post,
            sleep=lambda s: None,
        )
        return result, list(server.hits)

    result, hits = run(scenario)
    assert result.outcome is Outcome.FAILED
    assert result.details["status"] == 302
    assert hits == ["/hook"]


def test_the_webhook_connection_checks_every_resolved_address() -> None:
    with pytest.raises(OutboundRefused, match=r"169\.254\.169\.254 refused: link-local"):
        Outbound().create_connection("169.254.169.254", 80, 1.0)
    with pytest.raises(OutboundRefused, match="refused: loopback address"):
        Outbound().create_connection("localhost", 9, 1.0)


def test_refusals_are_counted_in_a_metric() -> None:
    from prometheus_client import CollectorRegistry

    from modelmonitor.adapters.metrics import MetricsRecorder

    strict = Outbound()
    registry = CollectorRegistry()
    MetricsRecorder(registry).watch_outbound(strict)

    async def scenario(server: Server) -> None:
        server.redirects["go.csv"] = "http://169.254.169.254/"
        for url in (f"{server.base}/ref.csv", "http://169.254.169.254/x.csv"):
            with pytest.raises(ReferenceLoadError):
                await load_url(url, strict)
        with pytest.raises(ReferenceLoadError):
            await load_url(f"{server.base}/go.csv", LOOPBACK_ALLOWED)

    run(scenario)

    def sample(rule: str) -> float | None:
        return registry.get_sample_value("modelmonitor_outbound_blocked_total", {"rule": rule})

    assert sample("loopback") == 1
    assert sample("link_local") == 1
    assert LOOPBACK_ALLOWED.blocked.get("redirect", 0) >= 1


# -- bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "content-length"])
def test_a_200_mb_reference_is_refused_without_being_read(declared: bool) -> None:
    name = "huge-declared" if declared else "huge"

    async def scenario(server: Server) -> tuple[ReferenceLoadError, int, int]:
        limits = ResponseLimits(reference=1 << 20)
        tracemalloc.start()
        try:
            with pytest.raises(ReferenceLoadError) as info:
                await load_url(
                    f"{server.base}/{name}", fence("127.0.0.0/8", limits=limits), max_bytes=1 << 20
                )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await asyncio.sleep(0.2)  # let the server see the hang-up
        return info.value, peak, server.streamed

    error, peak, streamed = run(scenario)
    assert error.reason == "ReferenceTooLarge"
    assert "over the 1048576-byte limit" in str(error)
    assert peak < 16 << 20, f"peak {peak} bytes"
    assert streamed < HUGE // 4, f"the server got {streamed} bytes out: read to the end?"


def test_a_200_mb_prometheus_answer_is_refused_with_low_memory() -> None:
    async def scenario(server: Server) -> tuple[str, int, int]:
        tracemalloc.start()
        try:
            url = f"{server.base}/huge"
            async with PrometheusClient(url, fence=LOOPBACK_ALLOWED) as client:
                with pytest.raises(PrometheusResponseError) as info:
                    await client.query_value("up")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await asyncio.sleep(0.2)
        return str(info.value), peak, server.streamed

    message, peak, streamed = run(scenario)
    assert "too large" in message
    assert "8388608-byte limit" in message
    assert peak < 32 << 20, f"peak {peak} bytes"
    assert streamed < HUGE // 4


def test_probe_answers_over_the_cap_are_bad_responses_and_bounded_in_memory() -> None:
    """16 concurrent requests, each answered 200 MB: each stops at the probe cap."""

    async def scenario(server: Server) -> tuple[Any, int]:
        limits = ResponseLimits(probe=256 << 10)
        config = ProbeConfig(
            url=server.base, protocol="json", path="/huge", retries=0, concurrency=16
        )
        tracemalloc.start()
        try:
            result = await probe(
                config,
                Dataset({"a": np.arange(16.0)}),
                outbound=fence("127.0.0.0/8", limits=limits),
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return result, peak

    result, peak = run(scenario)
    assert result.errors.count(ErrorKind.BAD_RESPONSE) == 16
    assert "response body too large" in result.errors.messages[ErrorKind.BAD_RESPONSE][0]
    assert peak < 48 << 20, f"peak {peak} bytes"


def test_the_byte_budget_refuses_instead_of_overdrawing() -> None:
    budget = ByteBudget(100)
    budget.take(80)
    with pytest.raises(BufferBusy, match="OUTBOUND_BUFFER_BYTES"):
        budget.take(30)
    budget.give(80)
    budget.take(100)
    assert budget.free == 0


def test_answers_the_budget_cannot_hold_are_not_measured_not_failures() -> None:
    """Another team's bodies filling the buffer must not burn this endpoint's SLO."""

    async def scenario(server: Server) -> None:
        limits = ResponseLimits(probe=1 << 20, buffer=100 << 10)
        small = fence("127.0.0.0/8", limits=limits)
        config = ProbeConfig(url=server.base, protocol="json", path="/mid", retries=2)
        result = await probe(config, Dataset({"a": np.arange(4.0)}), outbound=small)
        assert result.failure == OPERATOR_BUSY
        assert "response buffer (102400 bytes" in result.failure_message
        assert result.n_requests == 0
        assert result.errors.total == 0
        assert small.budget.free == small.budget.total  # every share given back
        assert small.blocked["buffer_busy"] == 4
        assert server.hits == ["/mid"] * 4  # not retried either

    run(scenario)
