"""Attacks on the payload-log collector over real HTTP (the aiohttp server on a loopback port).

A tenant who knows (or guesses) another tenant's monitor name tries to poison its drift
window: without a token, with the token of their own monitor, with the victim's token
path but CloudEvents extensions naming another namespace or service. Each attempt must
be refused, leave the victim's window untouched, and be counted by reason in the
``modelmonitor_payload_rejected_total`` metric.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest

from modelmonitor.adapters.metrics import MetricsRecorder
from modelmonitor.core.spec import MonitorSpec, PayloadLogSpec, ReferenceSpec, TargetSpec
from modelmonitor.sources.payload import server
from modelmonitor.sources.payload.server import (
    bound_port,
    start_payload_server,
    stop_payload_server,
)
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.payload.tokens import new_token
from tests.unit.sources.payload_events import T0, ce_headers

pytestmark = pytest.mark.timeout(60)

VICTIM_TOKEN = new_token()
ATTACKER_TOKEN = new_token()
ROWS = {"instances": [[1.0, 2.0]]}
PREDICTIONS = {"predictions": [1]}


def spec(target: str, kind: str = "InferenceService") -> MonitorSpec:
    return MonitorSpec(
        target=TargetSpec(name=target, kind=kind),  # type: ignore[arg-type]
        reference=ReferenceSpec(source="inline"),
        payload_log=PayloadLogSpec(window_seconds=600, min_samples=1, max_samples=1000),
    )


def tenants() -> PayloadStore:
    store = PayloadStore()
    store.register("victim-ns", "fraud", spec("fraud-model"), VICTIM_TOKEN)
    store.register("attacker-ns", "mine", spec("my-model"), ATTACKER_TOKEN)
    store.register("victim-ns", "batch", spec("batch-scorer", "Deployment"), VICTIM_TOKEN)
    return store


@asynccontextmanager
async def collector(store: PayloadStore) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    runner = await start_payload_server(store, 0, host="127.0.0.1", clock=lambda: T0)
    try:
        async with aiohttp.ClientSession() as session:
            yield session, f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await stop_payload_server(runner)


async def post(
    session: aiohttp.ClientSession, url: str, event_id: str, kind: str, body: Any, **kw: str
) -> tuple[int, str]:
    headers = ce_headers(event_id, kind, **kw)
    async with session.post(url, data=json.dumps(body).encode(), headers=headers) as r:
        return r.status, await r.text()


def run(scenario: Callable[[aiohttp.ClientSession, str], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async with collector(STORE) as (session, base):
            await scenario(session, base)

    asyncio.run(main())


STORE = PayloadStore()  # replaced by each test (run() serves the module's STORE)


def rows_of(store: PayloadStore, namespace: str, monitor: str) -> int:
    window = store.window(namespace, monitor)
    assert window is not None
    return window.status(T0).counters.received


def refused_metric(store: PayloadStore) -> dict[str, float]:
    metrics = MetricsRecorder()
    metrics.watch_payloads(store)
    text = generate_latest(metrics.registry).decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("modelmonitor_payload_rejected_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


@pytest.fixture(autouse=True)
def fresh_store() -> None:
    global STORE
    STORE = tenants()


def test_the_right_token_is_accepted() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        url = f"{base}/v1/logs/victim-ns/fraud/{VICTIM_TOKEN}"
        ns = {"namespace": "victim-ns", "service": "fraud-model"}
        assert (await post(session, url, "e1", "request", ROWS, **ns))[0] == 202
        assert (await post(session, url, "e1", "response", PREDICTIONS, **ns))[0] == 202

    run(scenario)
    window = STORE.window("victim-ns", "fraud")
    assert window is not None
    assert len(window) == 1
    assert STORE.rejected == {}


def test_a_forged_event_without_token_is_refused_and_counted() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        ns = {"namespace": "victim-ns", "service": "fraud-model"}
        for url in (
            f"{base}/v1/logs/victim-ns/fraud",
            f"{base}/",
            f"{base}/v1/logs/victim-ns/fraud/",
        ):
            status, text = await post(session, url, "f1", "request", ROWS, **ns)
            assert status in (401, 404), (url, status)
        status, text = await post(session, f"{base}/v1/logs/victim-ns/fraud", "f2", "request", ROWS)
        assert status == 401
        assert "token" in text

    run(scenario)
    assert rows_of(STORE, "victim-ns", "fraud") == 0
    assert STORE.rejected["token_missing"] >= 3
    assert refused_metric(STORE)["token_missing"] == STORE.rejected["token_missing"]


def test_another_monitors_token_is_refused_and_counted() -> None:
    texts: list[str] = []

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        ns = {"namespace": "victim-ns", "service": "fraud-model"}
        url = f"{base}/v1/logs/victim-ns/fraud/{ATTACKER_TOKEN}"
        for i in range(3):
            status, text = await post(session, url, f"g{i}", "request", ROWS, **ns)
            assert status == 403
            texts.append(text)
        # A monitor that does not exist answers the same: no oracle for monitor names.
        status, text = await post(
            session, f"{base}/v1/logs/victim-ns/nope/{ATTACKER_TOKEN}", "g9", "request", ROWS
        )
        assert status == 403
        texts.append(text)

    run(scenario)
    assert rows_of(STORE, "victim-ns", "fraud") == 0
    assert STORE.rejected == {"token_wrong": 3, "unknown_monitor": 1}
    assert refused_metric(STORE) == {"token_wrong": 3.0, "unknown_monitor": 1.0}
    assert all("no monitor victim-ns/" in t and "with this token" in t for t in texts)
    assert not any(VICTIM_TOKEN in t or ATTACKER_TOKEN in t for t in texts)


def test_a_token_prefix_or_a_longer_token_is_refused() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        for token in (VICTIM_TOKEN[:-1], VICTIM_TOKEN + "A", VICTIM_TOKEN.upper(), "x"):
            url = f"{base}/v1/logs/victim-ns/fraud/{token}"
            assert (await post(session, url, "p1", "request", ROWS))[0] == 403, token

    run(scenario)
    assert STORE.rejected == {"token_wrong": 4}
    assert rows_of(STORE, "victim-ns", "fraud") == 0


def test_ce_extensions_naming_another_namespace_or_service_are_refused() -> None:
    """The attacker's own valid URL cannot carry the victim's events, nor the victim's
    URL events from elsewhere: the CloudEvents extensions must name the target."""

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        victim = f"{base}/v1/logs/victim-ns/fraud/{VICTIM_TOKEN}"
        status, text = await post(
            session, victim, "h1", "request", ROWS, namespace="attacker-ns", service="fraud-model"
        )
        assert status == 403
        assert "comes from namespace attacker-ns" in text
        status, text = await post(
            session, victim, "h2", "request", ROWS, namespace="victim-ns", service="other"
        )
        assert status == 403
        assert "comes from InferenceService victim-ns/other" in text
        # KServe always sets both extensions: without them, not the target's logger.
        headers = ce_headers("h3", "request")
        del headers["Ce-Namespace"], headers["Ce-Inferenceservicename"]
        async with session.post(victim, data=json.dumps(ROWS).encode(), headers=headers) as r:
            assert r.status == 403
            assert "lacks the ce-namespace or ce-inferenceservicename" in await r.text()
        # A batch with one foreign event is refused whole.
        batch = [
            {
                "specversion": "1.0",
                "id": f"h{i}",
                "type": "org.kubeflow.serving.inference.request",
                "source": "x",
                "namespace": ns,
                "inferenceservicename": "fraud-model",
                "data": ROWS,
            }
            for i, ns in ((4, "victim-ns"), (5, "attacker-ns"))
        ]
        headers = {"Content-Type": "application/cloudevents-batch+json"}
        async with session.post(victim, data=json.dumps(batch).encode(), headers=headers) as r:
            assert r.status == 403

    run(scenario)
    window = STORE.window("victim-ns", "fraud")
    assert window is not None
    assert len(window) == 0
    assert window.status(T0).pending == 0
    assert STORE.rejected == {"foreign_source": 4}
    assert refused_metric(STORE) == {"foreign_source": 4.0}


def test_a_deployment_target_takes_events_without_extensions_but_not_foreign_ones() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        url = f"{base}/v1/logs/victim-ns/batch/{VICTIM_TOKEN}"
        headers = ce_headers("k1", "request")
        del headers["Ce-Namespace"], headers["Ce-Inferenceservicename"]
        async with session.post(url, data=json.dumps(ROWS).encode(), headers=headers) as r:
            assert r.status == 202
        status, _ = await post(session, url, "k2", "request", ROWS, namespace="attacker-ns")
        assert status == 403

    run(scenario)
    assert STORE.rejected == {"foreign_source": 1}


def test_a_refused_sender_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the token the answer comes before the body: a sender cannot make the
    collector buffer anything."""
    calls: list[int] = []
    real = server._events

    async def counting(request: Any, limit: int) -> Any:
        calls.append(1)
        return await real(request, limit)

    monkeypatch.setattr(server, "_events", counting)

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        big = b"[" + b"1," * 1_000_000 + b"1]"
        for url in (
            f"{base}/v1/logs/victim-ns/fraud/{ATTACKER_TOKEN}",
            f"{base}/v1/logs/victim-ns/fraud",
        ):
            async with session.post(url, data=big, headers=ce_headers("b1", "request")) as r:
                assert r.status in (401, 403)

    run(scenario)
    assert calls == []


def test_a_slow_body_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sender with a token cannot hold a parsing slot forever by trickling its body."""
    monkeypatch.setattr(server, "READ_SECONDS", 0.3)

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = "".join(f"{k}: {v}\r\n" for k, v in ce_headers("s1", "request").items())
        writer.write(
            (
                f"POST /v1/logs/victim-ns/fraud/{VICTIM_TOKEN} HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: 1000\r\n{head}\r\n{{"
            ).encode()
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout=5)
        writer.close()
        assert b" 408 " in status

    run(scenario)
    assert STORE.rejected == {"slow_body": 1}
