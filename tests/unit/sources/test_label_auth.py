"""Attacks on the collector's label route over real HTTP (the aiohttp server on loopback).

A tenant who knows another monitor's name tries to feed it labels (to fake realized
performance, or hide a drop): without a token, with their own monitor's token, at a
monitor that takes no labels, with a body too large or not a batch. Each attempt is
refused, leaves the victim's join untouched, and is counted by reason in
``modelmonitor_payload_rejected_total``, like the payload route's refusals.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest

from modelmonitor.adapters.metrics import MetricsRecorder
from modelmonitor.core.codecs.labels import LabelBatch
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.sources.payload.server import (
    bound_port,
    start_payload_server,
    stop_payload_server,
)
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.payload.tokens import new_token
from tests.unit.sources.payload_events import T0, feed, v1_pair
from tests.unit.sources.test_late_labels import payload_spec
from tests.unit.sources.test_payload_auth import refused_metric

pytestmark = pytest.mark.timeout(60)

VICTIM = new_token()
ATTACKER = new_token()


def store() -> PayloadStore:
    s = PayloadStore()
    s.register("victim-ns", "fraud", payload_spec(labels={"labelDelay": "1h"}), VICTIM)
    s.register("attacker-ns", "mine", payload_spec(labels={}), ATTACKER)
    no_labels: MonitorSpec = payload_spec()
    s.register("victim-ns", "plain", no_labels, VICTIM)
    window = s.window("victim-ns", "fraud")
    assert window is not None
    feed(window, v1_pair("r1", [[0.5]], [[0.4, 0.6]], namespace="victim-ns", service="m"))
    return s


def serve(
    s: PayloadStore,
    scenario: Callable[[aiohttp.ClientSession, str], Coroutine[Any, Any, None]],
    max_body_bytes: int = 4096,
) -> None:
    async def main() -> None:
        runner = await start_payload_server(
            s, 0, host="127.0.0.1", clock=lambda: T0, max_body_bytes=max_body_bytes
        )
        try:
            async with aiohttp.ClientSession() as session:
                await scenario(session, f"http://127.0.0.1:{bound_port(runner)}")
        finally:
            await stop_payload_server(runner)

    asyncio.run(main())


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, str]:
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.text()


LABEL = json.dumps([{"id": "r1", "label": 1}]).encode()


def joined(s: PayloadStore) -> dict[str, int]:
    window = s.window("victim-ns", "fraud")
    assert window is not None
    counters = window.label_counters()
    assert counters is not None
    return counters


def test_the_monitors_token_joins_labels_and_says_what_the_join_made_of_them() -> None:
    s = store()

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        url = f"{base}/v1/labels/victim-ns/fraud/{VICTIM}"
        body = json.dumps({"labels": [{"id": "r1", "label": 1}, {"id": "x", "label": 0}]})
        status, text = await post(session, url, body.encode())
        assert status == 202, text
        assert json.loads(text) == {
            "accepted": 2,
            "matched": 1,
            "unknownIds": 1,
            "duplicates": 0,
            "late": 0,
        }

    serve(s, scenario)
    assert joined(s)["matched"] == 1
    assert s.rejected == {}


def test_labels_without_the_victims_token_are_refused_and_counted() -> None:
    s = store()

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        assert (await post(session, f"{base}/v1/labels/victim-ns/fraud", LABEL))[0] == 401
        own = f"{base}/v1/labels/victim-ns/fraud/{ATTACKER}"  # the attacker's own token
        status, text = await post(session, own, LABEL)
        assert status == 403
        assert "with this token" in text
        nobody = f"{base}/v1/labels/victim-ns/ghost/{VICTIM}"
        assert (await post(session, nobody, LABEL))[0] == 403
        # The victim's token at a monitor of the victim that takes no labels.
        plain = f"{base}/v1/labels/victim-ns/plain/{VICTIM}"
        assert (await post(session, plain, LABEL))[0] == 403

    serve(s, scenario)
    assert joined(s)["received"] == 0
    assert refused_metric(s) == {
        "token_missing": 1.0,
        "token_wrong": 1.0,
        "unknown_monitor": 1.0,
        "labels_off": 1.0,
    }


def test_bodies_too_large_or_not_a_batch_are_refused_and_counted() -> None:
    s = store()

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        url = f"{base}/v1/labels/victim-ns/fraud/{VICTIM}"
        big = json.dumps([{"id": f"r{i}", "label": 1} for i in range(500)]).encode()
        assert (await post(session, url, big))[0] == 413
        status, text = await post(session, url, b'[{"id": "r1"}]')
        assert status == 400
        assert "has no 'label'" in text

    serve(s, scenario)
    assert joined(s)["received"] == 0
    assert refused_metric(s) == {"too_large": 1.0, "malformed": 1.0}


def test_the_join_is_exported_as_metrics() -> None:
    s = store()
    window = s.window("victim-ns", "fraud")
    assert window is not None
    window.add_labels(LabelBatch(("r1", "x"), ("1", "0")), T0)
    metrics = MetricsRecorder()
    metrics.watch_payloads(s)
    text = generate_latest(metrics.registry).decode()
    series = (
        'modelmonitor_payload_labels_total{{monitor="fraud",namespace="victim-ns",result="{}"}}'
    )
    assert series.format("matched") + " 1.0" in text
    assert series.format("unknownIds") + " 1.0" in text
    assert 'modelmonitor_payload_labels_awaiting{monitor="fraud",namespace="victim-ns"} 0.0' in text
