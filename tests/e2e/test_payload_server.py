"""The payload-log collector over real HTTP: the aiohttp server on a free loopback port.

KServe's payload logger (a Go agent next to the model server in an InferenceService's
pod) cannot run here: there is no KServe or Knative. An aiohttp client stands in for
it and POSTs each request and response exactly as the logger does - one CloudEvent 1.0
per HTTP request in binary mode: the ``Ce-Id`` shared by both halves, ``Ce-Type``
``org.kubeflow.serving.inference.request``/``.response``, ``Ce-Source``,
``Ce-Specversion``, ``Ce-Time``, the extensions ``Ce-Inferenceservicename``,
``Ce-Namespace``, ``Ce-Component``, ``Ce-Endpoint``, ``Ce-Metadata``, and the raw
inference payload (with the inference request's Content-Type) as body. The last test
forwards the real request and response bodies of a real MLServer (Open Inference
Protocol v2) that way. Each monitor's logger URL ends with its token, as the operator
writes it into the monitor's Secret. No control plane is needed; the clock is the test's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import numpy as np
import pytest
from sklearn.datasets import load_iris

from modelmonitor.core.dataset import CategoricalColumn, Feature
from modelmonitor.core.spec import MonitorSpec, PayloadLogSpec, ReferenceSpec, TargetSpec
from modelmonitor.sources.payload.server import (
    bound_port,
    start_payload_server,
    stop_payload_server,
)
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.payload.tokens import new_token
from tests.modelserver import ModelServer

pytestmark = pytest.mark.timeout(300)

T0 = 1_800_000_000.0
TOKEN = new_token()
IRIS = [
    Feature("sepal_length", "numerical"),
    Feature("sepal_width", "numerical"),
    Feature("petal_length", "numerical"),
    Feature("petal_width", "numerical"),
]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def spec(target: str = "iris", *, window_seconds: int = 600, min_samples: int = 1) -> MonitorSpec:
    return MonitorSpec(
        target=TargetSpec(name=target, kind="InferenceService"),
        reference=ReferenceSpec(source="inline"),
        payload_log=PayloadLogSpec(
            window_seconds=window_seconds, min_samples=min_samples, max_samples=1000
        ),
    )


@asynccontextmanager
async def collector(
    store: PayloadStore, clock: Clock, **kw: Any
) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    runner = await start_payload_server(store, 0, host="127.0.0.1", clock=clock, **kw)
    try:
        async with aiohttp.ClientSession() as session:
            yield session, f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await stop_payload_server(runner)


def kserve_headers(
    event_id: str,
    kind: str,
    *,
    namespace: str = "ml",
    service: str = "iris",
    endpoint: str = "default",
) -> dict[str, str]:
    """The headers of KServe's logger (cloudevents sdk-go, binary mode)."""
    return {
        "Content-Type": "application/json",
        "Ce-Id": event_id,
        "Ce-Specversion": "1.0",
        "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
        "Ce-Source": f"http://localhost:9081/{service}-predictor",
        "Ce-Time": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "Ce-Inferenceservicename": service,
        "Ce-Namespace": namespace,
        "Ce-Component": "predictor",
        "Ce-Endpoint": endpoint,
        "Ce-Metadata": "{}",
    }


async def send(
    session: aiohttp.ClientSession,
    url: str,
    event_id: str,
    kind: str,
    body: Any,
    **attrs: str,
) -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(url, data=data, headers=kserve_headers(event_id, kind, **attrs)) as r:
        return r.status, await r.text()


def test_v1_events_pair_into_the_monitors_window() -> None:
    store = PayloadStore()
    store.register("ml", "fraud", spec(), TOKEN)
    clock = Clock()

    async def scenario() -> None:
        async with collector(store, clock) as (session, base):
            url = f"{base}/v1/logs/ml/fraud/{TOKEN}"
            rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
            assert await send(session, url, "a1", "request", {"instances": rows}) == (
                202,
                "accepted\n",
            )
            assert (await send(session, url, "a1", "response", {"predictions": [0, 2]}))[0] == 202
            named = [dict(zip([f.name for f in IRIS], [5.9, 3.0, 4.2, 1.5], strict=True))]
            # the response first this time: the logger's workers race each other
            assert (await send(session, url, "a2", "response", {"predictions": [1]}))[0] == 202
            assert (await send(session, url, "a2", "request", {"instances": named}))[0] == 202
            assert (await send(session, url, "a2", "request", {"instances": named}))[0] == 202
            async with session.get(f"{base}/healthz") as r:
                assert r.status == 200

    asyncio.run(scenario())
    window = store.window("ml", "fraud")
    assert window is not None
    data = window.snapshot(clock.now, IRIS, "species", "categorical")
    assert data is not None
    np.testing.assert_array_equal(data["petal_length"], [1.4, 5.2, 4.2])
    species = data["species"]
    assert isinstance(species, CategoricalColumn)
    assert list(species.labels()) == ["0", "2", "1"]
    counters = window.status(clock.now).counters
    assert (counters.received, counters.paired, counters.rows) == (5, 2, 3)
    assert counters.duplicates == 1


def test_v2_events_at_each_monitors_url_and_expired_by_the_window() -> None:
    """Two monitors of one InferenceService: the logger's one URL feeds one of them, so
    here each gets the events at its own URL (with its own token); ``POST /``, which
    routed by the unauthenticated ce extensions, is gone."""
    store = PayloadStore()
    store.register("ml", "drift", spec(window_seconds=60), TOKEN)
    store.register("ml", "canary-watch", spec(window_seconds=60), TOKEN)
    store.register("ml", "other", spec("another-model"), TOKEN)
    clock = Clock()
    request = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 4],
                "datatype": "FP64",
                "data": [1, 2, 3, 4, 5, 6, 7, 8],
            }
        ]
    }
    response = {
        "model_name": "iris",
        "outputs": [{"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [1, 2]}],
    }

    async def scenario() -> None:
        async with collector(store, clock) as (session, base):
            for monitor in ("drift", "canary-watch"):
                url = f"{base}/v1/logs/ml/{monitor}/{TOKEN}"
                assert (await send(session, url, "b1", "request", request))[0] == 202
                assert (await send(session, url, "b1", "response", response))[0] == 202
            clock.now += 45
            canary = {"endpoint": "canary"}
            for monitor in ("drift", "canary-watch"):
                url = f"{base}/v1/logs/ml/{monitor}/{TOKEN}"
                assert (await send(session, url, "b2", "request", request, **canary))[0] == 202
                assert (await send(session, url, "b2", "response", response, **canary))[0] == 202

    asyncio.run(scenario())
    for monitor in ("drift", "canary-watch"):
        window = store.window("ml", monitor)
        assert window is not None
        data = window.snapshot(clock.now, IRIS)
        assert data is not None
        np.testing.assert_array_equal(data["sepal_width"], [2.0, 6.0, 2.0, 6.0])
        canary_rows = window.snapshot(clock.now, IRIS, endpoint="canary")
        assert canary_rows is not None
        assert canary_rows.n_rows == 2
        later = window.snapshot(clock.now + 30, IRIS)  # b1 is 75 s old: out of the 60 s window
        assert later is not None
        assert later.n_rows == 2
        assert window.snapshot(clock.now + 61, IRIS) is None
        assert window.status(clock.now + 61).counters.expired_rows == 4
    other = store.window("ml", "other")
    assert other is not None
    assert other.status(clock.now).counters.received == 0


def test_refusals_401_403_400_413() -> None:
    store = PayloadStore()
    store.register("ml", "fraud", spec(), TOKEN)
    clock = Clock()
    ok = {"instances": [[1.0]]}

    async def scenario() -> None:
        async with collector(store, clock, max_body_bytes=64 * 1024) as (session, base):
            url = f"{base}/v1/logs/ml/fraud/{TOKEN}"
            nope = f"{base}/v1/logs/ml/nope/{TOKEN}"
            status, text = await send(session, nope, "c1", "request", ok)
            assert status == 403
            assert "no monitor ml/nope with this token collects payload logs" in text
            status, text = await send(session, base + "/", "c1", "request", ok, service="x")
            assert status == 401
            assert "/v1/logs/{namespace}/{monitor}/{token}" in text

            status, text = await send(session, url, "c2", "request", b"{not json")
            assert (status, text.count("\n")) == (400, 1)
            assert "event data is not JSON" in text
            status, text = await send(session, url, "c3", "request", {"rows": []})
            assert status == 400
            assert "neither 'instances'" in text
            status, text = await send(session, url, "c4", "request", ok, service="other")
            assert status == 403
            assert "comes from InferenceService ml/other" in text
            async with session.post(url, data=b"{}", headers={"Ce-Id": "x"}) as r:
                assert r.status == 400
                assert "not a CloudEvent" in await r.text()
            await send(session, url, "c5", "request", {"instances": [[1.0], [2.0]]})
            status, text = await send(session, url, "c5", "response", {"predictions": [1]})
            assert status == 400
            assert "1 prediction(s) for 2 request row(s)" in text

            big = json.dumps({"instances": [[1.5] * 100] * 200}).encode()
            assert len(big) > 64 * 1024
            status, text = await send(session, url, "c6", "request", big)
            assert (status, text) == (413, "body larger than 65536 bytes\n")

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed
                for i in range(0, len(big), 8192):
                    yield big[i : i + 8192]

            headers = kserve_headers("c7", "request")
            async with session.post(url, data=chunks(), headers=headers) as r:
                assert r.status == 413
            assert (await send(session, url, "c8", "request", ok))[0] == 202  # still serving

    asyncio.run(scenario())
    window = store.window("ml", "fraud")
    assert window is not None
    counters = window.status(clock.now).counters
    assert counters.malformed == 5
    assert counters.paired == 0
    assert store.rejected == {
        "unknown_monitor": 1,
        "token_missing": 1,
        "foreign_source": 1,
        "too_large": 2,
    }


def test_default_body_limit_is_4_mib() -> None:
    store = PayloadStore()
    store.register("ml", "fraud", spec(), TOKEN)

    async def scenario() -> None:
        async with collector(store, Clock()) as (session, base):
            url = f"{base}/v1/logs/ml/fraud/{TOKEN}"
            body = b" " * (4 * 1024 * 1024 + 1)
            assert (await send(session, url, "d1", "request", body))[0] == 413
            body = json.dumps({"instances": [[0.5] * 1000] * 800}).encode()  # ~4 MB
            assert len(body) < 4 * 1024 * 1024
            assert (await send(session, url, "d2", "request", body))[0] == 202

    asyncio.run(scenario())


def test_real_mlserver_v2_bodies_forwarded_as_kserve_logs(model_server: ModelServer) -> None:
    """A real v2 request to MLServer and its real answer, logged as KServe's logger would."""
    x, _ = load_iris(return_X_y=True)
    rows = x[::5]  # 30 rows
    store = PayloadStore()
    store.register("ml", "iris-watch", spec(min_samples=30), TOKEN)
    clock = Clock()
    answers: list[Any] = []

    async def scenario() -> None:
        async with collector(store, clock) as (session, base):
            url = f"{base}/v1/logs/ml/iris-watch/{TOKEN}"
            infer = f"{model_server.url}/v2/models/iris/infer"
            for i in range(0, len(rows), 10):
                batch = rows[i : i + 10]
                request = json.dumps(
                    {
                        "inputs": [
                            {
                                "name": "input-0",
                                "shape": list(batch.shape),
                                "datatype": "FP64",
                                "data": batch.ravel().tolist(),
                            }
                        ]
                    }
                ).encode()
                async with session.post(
                    infer, data=request, headers={"Content-Type": "application/json"}
                ) as r:
                    assert r.status == 200
                    response = await r.read()
                answers.extend(json.loads(response)["outputs"][0]["data"])
                event_id = f"mlserver-{i}"
                assert (await send(session, url, event_id, "request", request))[0] == 202
                assert (await send(session, url, event_id, "response", response))[0] == 202

    asyncio.run(scenario())
    window = store.window("ml", "iris-watch")
    assert window is not None
    data = window.snapshot(clock.now, IRIS, "species", "categorical")
    assert data is not None
    assert data.n_rows == 30
    for j, feature in enumerate(IRIS):
        np.testing.assert_array_equal(data[feature.name], rows[:, j])
    species = data["species"]
    assert isinstance(species, CategoricalColumn)
    assert list(species.labels()) == [str(int(a)) for a in answers]
    assert set(species.categories) == {"0", "1", "2"}
