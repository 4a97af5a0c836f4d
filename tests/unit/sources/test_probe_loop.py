"""The probe loop (retries, backoff, concurrency, error kinds) over a scripted transport.

No network: every request goes to a FakeTransport that answers as the test says, on a
fake clock. The codecs are tested in test_probe_codecs.py.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from modelmonitor.core.codecs.inference import V2Options
from modelmonitor.core.dataset import CategoricalColumn, Dataset
from modelmonitor.sources.probe import HttpReply, ProbeConfig, TransportError, backoff_delay, probe
from modelmonitor.sources.probe_result import ENDPOINT_UNREACHABLE, ErrorKind, unreachable_result

URL = "http://model.test:8080"


def v1(**kw: Any) -> ProbeConfig:
    return ProbeConfig(**{"url": URL, "protocol": "v1", "model": "iris", **kw})


def v2(**kw: Any) -> ProbeConfig:
    return ProbeConfig(**{"url": URL, "protocol": "v2", "model": "iris", **kw})


def js(**kw: Any) -> ProbeConfig:
    return ProbeConfig(url=URL, protocol="json", **kw)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


Handler = Callable[[int, dict[str, Any]], HttpReply]


class FakeTransport:
    """Answers each POST with ``handler(call number, request body)``; records concurrency."""

    def __init__(self, handler: Handler, clock: FakeClock, latency: float = 0.010) -> None:
        self.handler = handler
        self.clock = clock
        self.latency = latency
        self.calls: list[dict[str, Any]] = []
        self.urls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def post(
        self, url: str, body: bytes, *, timeout: float, headers: Mapping[str, str]
    ) -> HttpReply:
        n = len(self.calls)
        request = json.loads(body)
        self.calls.append(request)
        self.urls.append(url)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
            self.clock.now += self.latency
            return self.handler(n, request)
        finally:
            self.in_flight -= 1


def v1_echo(n: int, request: dict[str, Any]) -> HttpReply:
    """A model that predicts class 1 when the first feature exceeds 2."""
    preds = [int(row[0] > 2) for row in request["instances"]]
    return HttpReply(200, json.dumps({"predictions": preds}).encode())


def golden() -> Dataset:
    return Dataset(
        {
            "x": np.array([1.0, 3.0, 0.5, 4.0, 2.5]),
            "label": np.array([0.0, 1.0, 1.0, 1.0, 0.0]),
        }
    )


def run_probe(
    config: ProbeConfig, handler: Handler, rows: Dataset | None = None, **kw: Any
) -> tuple[Any, FakeTransport, list[float]]:
    clock = FakeClock()
    transport = FakeTransport(handler, clock)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    result = asyncio.run(
        probe(
            config,
            rows if rows is not None else golden(),
            transport=transport,
            clock=clock,
            sleep=sleep,
            rng=random.Random(0),
            **kw,
        )
    )
    return result, transport, sleeps


def test_probe_collects_predictions_latencies_and_aligned_labels() -> None:
    result, transport, _ = run_probe(v1(batch_size=2, concurrency=1), v1_echo, label_column="label")
    assert transport.urls == [f"{URL}/v1/models/iris:predict"] * 3
    assert [len(c["instances"]) for c in transport.calls] == [2, 2, 1]
    assert all(len(row) == 1 for c in transport.calls for row in c["instances"])  # no label
    assert (result.n_sent, result.n_requests, result.n_answered) == (5, 3, 5)
    assert isinstance(result.predictions, CategoricalColumn)
    assert result.predictions.labels().tolist() == ["0", "1", "0", "1", "1"]
    assert isinstance(result.labels, CategoricalColumn)
    assert result.labels.labels().tolist() == ["0", "1", "1", "1", "0"]
    assert result.rows.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(result.latencies_ms, [10.0, 10.0, 10.0])
    assert result.request_ok.all()
    assert result.errors.total == 0
    assert result.failure is None
    assert result.error_ratio == 0.0
    summary = result.summary()
    assert summary["answered"] == 5
    assert summary["latencyMs"]["p95"] == pytest.approx(10.0)


def test_probe_retries_5xx_with_backoff_then_succeeds() -> None:
    def flaky(n: int, request: dict[str, Any]) -> HttpReply:
        if n < 2:
            return HttpReply(503, b'{"error": "overloaded"}')
        return v1_echo(n, request)

    rows = Dataset({"x": np.array([3.0])})
    result, transport, sleeps = run_probe(v1(retries=2), flaky, rows)
    assert len(transport.calls) == 3
    assert result.attempts == 3
    assert result.request_ok.tolist() == [True]
    assert result.errors.total == 0
    assert len(sleeps) == 2
    assert 0.025 <= sleeps[0] <= 0.05
    assert 0.05 <= sleeps[1] <= 0.1


def test_probe_gives_up_after_retries_and_records_5xx() -> None:
    rows = Dataset({"x": np.array([3.0, 1.0])})
    result, transport, _ = run_probe(
        v1(retries=1), lambda n, r: HttpReply(500, b"Internal Server Error"), rows
    )
    assert len(transport.calls) == 4
    assert result.errors.count(ErrorKind.HTTP_5XX) == 2
    assert result.errors.messages[ErrorKind.HTTP_5XX] == ("HTTP 500: Internal Server Error",)
    assert result.n_answered == 0
    assert result.error_ratio == 1.0
    assert result.failure is None  # the server answered: reachable, but failing


def test_probe_never_retries_4xx() -> None:
    result, transport, sleeps = run_probe(
        v1(retries=3), lambda n, r: HttpReply(404, b'{"error": "Model nope not found"}')
    )
    assert len(transport.calls) == 5
    assert sleeps == []
    assert result.errors.count(ErrorKind.HTTP_4XX) == 5
    assert result.errors.messages[ErrorKind.HTTP_4XX] == ("HTTP 404: Model nope not found",)
    assert result.errors.to_dict()["counts"] == {"http_4xx": 5}


def test_probe_records_bad_responses_without_retrying() -> None:
    result, transport, _ = run_probe(v1(), lambda n, r: HttpReply(200, b'{"predictions": 1}'))
    assert len(transport.calls) == 5
    assert result.errors.count(ErrorKind.BAD_RESPONSE) == 5
    assert "expected a list" in result.errors.messages[ErrorKind.BAD_RESPONSE][0]


def test_probe_unreachable_endpoint_is_marked_and_stops_early() -> None:
    def refused(n: int, request: dict[str, Any]) -> HttpReply:
        raise TransportError(ErrorKind.CONNECTION, "Connection refused")

    rows = Dataset({"x": np.arange(50, dtype=np.float64)})
    result, transport, _ = run_probe(v1(retries=1, concurrency=2, fail_fast_after=4), refused, rows)
    assert result.failure == ENDPOINT_UNREACHABLE
    assert result.unreachable
    assert "Connection refused" in result.failure_message
    assert result.n_skipped > 0
    assert result.n_sent + result.n_skipped == 50
    assert result.n_requests < 10
    assert len(transport.calls) <= 2 * result.n_requests
    assert result.errors.count(ErrorKind.CONNECTION) == result.n_requests


def test_probe_timeouts_are_recorded_not_retried() -> None:
    def slow(n: int, request: dict[str, Any]) -> HttpReply:
        raise TransportError(ErrorKind.TIMEOUT, "no answer within 2s")

    result, transport, sleeps = run_probe(v1(retries=2), slow)
    assert len(transport.calls) == 5
    assert sleeps == []
    assert result.errors.count(ErrorKind.TIMEOUT) == 5
    assert result.failure == ENDPOINT_UNREACHABLE


def test_probe_some_answers_mean_reachable() -> None:
    def half(n: int, request: dict[str, Any]) -> HttpReply:
        if n % 2:
            raise TransportError(ErrorKind.TIMEOUT, "no answer within 2s")
        return v1_echo(n, request)

    result, _, _ = run_probe(v1(retries=0), half, label_column="label")
    assert result.failure is None
    assert result.rows.tolist() == [0, 2, 4]
    assert result.labels is not None
    assert result.labels.labels().tolist() == ["0", "1", "0"]
    assert result.request_ok.tolist() == [True, False, True, False, True]
    assert result.error_ratio == pytest.approx(0.4)
    assert result.ok_latencies_ms.shape == (3,)


def test_probe_bounds_concurrency() -> None:
    rows = Dataset({"x": np.arange(40, dtype=np.float64)})
    _, transport, _ = run_probe(v1(concurrency=3), v1_echo, rows)
    assert len(transport.calls) == 40
    assert transport.max_in_flight == 3


def test_probe_v2_with_probabilities_and_numerical_labels() -> None:
    def model(n: int, request: dict[str, Any]) -> HttpReply:
        tensor = request["inputs"][0]
        rows = tensor["shape"][0]
        proba = [p for x in tensor["data"] for p in ((0.8, 0.2) if x < 2 else (0.1, 0.9))]
        outputs = [
            {"name": "predict", "shape": [rows, 1], "datatype": "INT64",
             "data": [int(x >= 2) for x in tensor["data"]]},
            {"name": "predict_proba", "shape": [rows, 2], "datatype": "FP64", "data": proba},
        ]  # fmt: skip
        return HttpReply(200, json.dumps({"outputs": outputs}).encode())

    options = V2Options(outputs=("predict", "predict_proba"), probability_output="predict_proba")
    result, transport, _ = run_probe(
        v2(batch_size=3, v2=options), model, features=["x"], label_column="label"
    )
    assert transport.calls[0]["outputs"] == [{"name": "predict"}, {"name": "predict_proba"}]
    assert result.predictions.labels().tolist() == ["0", "1", "0", "1", "1"]
    assert result.probabilities is not None
    assert result.probabilities.shape == (5, 2)


def test_probe_numerical_predictions() -> None:
    def regressor(n: int, request: dict[str, Any]) -> HttpReply:
        preds = [row["x"] * 2 for row in request["instances"]]
        return HttpReply(200, json.dumps({"predictions": preds}).encode())

    result, _, _ = run_probe(
        js(prediction_type="numerical", batch_size=5), regressor, label_column="label"
    )
    assert isinstance(result.predictions, np.ndarray)
    np.testing.assert_allclose(result.predictions, [2.0, 6.0, 1.0, 8.0, 5.0])
    assert isinstance(result.labels, np.ndarray)


def test_probe_refuses_a_missing_label_column() -> None:
    with pytest.raises(ValueError, match="label column 'y'"):
        run_probe(v1(), v1_echo, label_column="y")


def test_probe_of_no_rows_and_unreachable_result() -> None:
    result, transport, _ = run_probe(v1(), v1_echo, Dataset({"x": np.zeros(0)}))
    assert transport.calls == []
    assert result.n_requests == 0
    assert result.error_ratio is None
    gone = unreachable_result("Service ns/m port 8080 has no ready endpoint")
    assert gone.unreachable
    assert gone.summary()["failure"] == ENDPOINT_UNREACHABLE


def test_backoff_is_exponential_capped_and_jittered() -> None:
    config = v1(backoff_seconds=0.1, backoff_max_seconds=0.5)
    rng = random.Random(3)
    for attempt, cap in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.5), (8, 0.5)]:
        delays = {backoff_delay(attempt, config, rng) for _ in range(20)}
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(delays) > 1
