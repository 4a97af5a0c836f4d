"""A monitoring run from spec to Report, every source faked at its edge (no cluster).

The probe talks to a fake transport, the payload log is a real store fed with events as
KServe's logger sends them, Prometheus is a small local HTTP server; the reference is
inline rows. Each test reads the Report a run returns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from modelmonitor.core.codecs.cloudevents import parse_event
from modelmonitor.core.dataset import Dataset
from modelmonitor.core.report import Problem, Report
from modelmonitor.core.spec import MonitorSpec, SLOSpec, parse_spec
from modelmonitor.engine.runner import InlineRunner
from modelmonitor.sources.base import Clients, CurrentData, Gathered, RunContext, Source
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.probe import HttpReply
from modelmonitor.sources.reference import ReferenceCache
from modelmonitor.sources.registry import Registry, UnknownSourceError
from tests.unit.loopback import LOOPBACK_ALLOWED

NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
ENDPOINT = "http://model.test"
# The model: class "a" below 3, "b" from 3 on; the reference holds its answers.
REFERENCE = [
    {"x": i / 10, "prediction": "a" if i < 30 else "b", "label": "a" if i < 30 else "b"}
    for i in range(60)
]
# A golden set that drifted upwards: more "b" answers, four of them labelled wrong.
GOLDEN = [{"x": 2 + i / 10, "label": "b" if i >= 10 or i < 4 else "a"} for i in range(40)]


class Objects:
    """The cluster as plain dicts: what the reference cache and the endpoint lookup read."""

    def __init__(self, items: Mapping[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.items = dict(items or {})

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.items.get((kind, name))

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> Sequence[dict[str, Any]]:
        return []


class Model:
    """The json protocol's model: one answer per row, HTTP 503 for the rows in ``down``."""

    def __init__(self, down: Sequence[float] = ()) -> None:
        self.down = set(down)
        self.requests = 0

    async def post(
        self, url: str, body: bytes, *, timeout: float, headers: Mapping[str, str]
    ) -> HttpReply:
        self.requests += 1
        assert url == f"{ENDPOINT}/predict"
        rows = json.loads(body)["instances"]
        if any(row["x"] in self.down for row in rows):
            return HttpReply(503, b"overloaded")
        answers = ["a" if row["x"] < 3 else "b" for row in rows]
        return HttpReply(200, json.dumps({"predictions": answers}).encode())


def monitor(**spec: Any) -> MonitorSpec:
    base: dict[str, Any] = {
        "target": {
            "name": "model",
            "kind": "External",
            "endpoint": {"url": ENDPOINT, "protocol": "json"},
        },
        "reference": {"inline": REFERENCE},
        "features": [{"name": "x", "type": "numerical"}],
        "prediction": {"name": "prediction", "type": "categorical", "labelColumn": "label"},
        "drift": {"minSamples": 10},
    }
    return parse_spec(base | spec)


def runner(
    objects: Objects | None = None,
    model: Model | None = None,
    payloads: PayloadStore | None = None,
    **kw: Any,
) -> InlineRunner:
    objects = objects or Objects()
    clients = Clients(
        references=ReferenceCache(objects, outbound=LOOPBACK_ALLOWED),
        lookup=objects,
        clock=lambda: NOW,
        outbound=LOOPBACK_ALLOWED,
        transport=model or Model(),
        payloads=payloads,
        **kw,
    )
    return InlineRunner(clients)


def run(
    spec: MonitorSpec, inline: InlineRunner | None = None, status: Mapping[str, Any] | None = None
) -> Report:
    return asyncio.run((inline or runner()).run("ml", "watch", spec, status or {}))


PROBE_SLOS = [
    {"name": "errors", "window": "1h", "objective": 90, "errorRatio": {}},
    {"name": "latency", "window": "1h", "latency": {"thresholdMs": 5000}},
]


def test_probe_with_a_golden_set_drift_quality_and_slos() -> None:
    model = Model(down=(2.0, 2.1))
    spec = monitor(
        data={"probe": {"samples": 1000, "retries": 0, "dataset": {"inline": GOLDEN}}},
        slos=PROBE_SLOS,
    )
    report = run(spec, runner(model=model))
    assert model.requests == 40
    assert report.samples == 38
    assert report.problems == ()
    drift = report.drift
    assert drift.status == "ok"
    assert drift.drifted
    assert {f.name for f in drift.features} == {"x", "prediction"}
    assert report.data_quality is not None
    assert report.model_quality is not None
    assert report.model_quality["task"] == "binary"
    assert report.model_quality["rows"] == 38
    assert report.details["probe"]["sent"] == 40
    assert report.details["probe"]["answered"] == 38
    assert report.details["probe"]["errors"]["counts"] == {"http_5xx": 2}
    assert [s.name for s in report.slos] == ["errors", "latency"]
    assert [s.met for s in report.slos] == [True, True]
    history = report.details["sloHistory"]
    assert list(history) == ["errors", "latency"]


def test_probe_without_a_golden_set_sends_the_reference_and_checks_predictions_only() -> None:
    report = run(monitor(data={"probe": {"samples": 1000}}))
    assert report.samples == 60
    assert report.drift.status == "ok"
    assert not report.drift.drifted
    assert [f.name for f in report.drift.features] == ["prediction"]
    assert report.model_quality is not None  # the reference has the label column
    assert report.model_quality["rows"] == 60
    assert "sloHistory" not in report.details


GOLDEN_PROBE = {"probe": {"samples": 1000, "retries": 0, "dataset": {"inline": GOLDEN}}}


def test_ks_with_a_categorical_prediction_judges_the_prediction_by_auto() -> None:
    # ks fits x, not the categorical prediction: the prediction is judged by auto's test
    # at alpha (not ks's 0.01), the report names the method used, and the run succeeds
    spec = monitor(drift={"minSamples": 10, "method": "ks", "threshold": 0.01}, data=GOLDEN_PROBE)
    report = run(spec)
    assert report.problems == ()
    assert report.drift.status == "ok"
    used = {f.name: (f.method, f.threshold) for f in report.drift.features}
    assert used["x"] == ("ks", 0.01)
    assert used["prediction"][0] in ("chi2", "fisher", "ztest")
    assert used["prediction"][1] == 0.05


def test_a_feature_threshold_flips_that_feature_in_a_run() -> None:
    # the golden set moved x by ~2 reference sd: wasserstein far above 0.1, below 5
    def x_drifted(feature: dict[str, Any]) -> bool:
        spec = monitor(
            features=[{"name": "x", "type": "numerical", **feature}],
            drift={"minSamples": 10, "method": "wasserstein"},
            data=GOLDEN_PROBE,
        )
        x = next(f for f in run(spec).drift.features if f.name == "x")
        return x.drifted

    assert x_drifted({})
    assert not x_drifted({"threshold": 5})
    assert not x_drifted({"method": "psi", "threshold": 10})


def test_an_unreachable_endpoint_is_a_problem_and_no_drift_verdict() -> None:
    spec = monitor(
        target={
            "name": "model",
            "endpoint": {"service": {"name": "model", "port": 80}, "protocol": "json"},
        },
        data={"probe": {}},
        slos=PROBE_SLOS[:1],
    )
    report = run(spec, runner(resolution="pods"))
    assert [p.reason for p in report.problems] == ["EndpointUnreachable"]
    assert "Service ml/model" in report.problems[0].message
    assert report.drift.status == "unavailable"
    assert report.samples == 0
    assert report.details["probe"]["failure"] == "EndpointUnreachable"
    assert [(s.name, s.met) for s in report.slos] == [("errors", None)]


def test_a_probe_set_without_the_inputs_is_a_problem() -> None:
    spec = monitor(data={"probe": {"dataset": {"inline": [{"y": 1}]}}})
    report = run(spec)
    assert [p.reason for p in report.problems] == ["ProbeSetUnavailable"]
    assert report.problems[0].message == "the probe set lacks input column(s) x"
    assert report.drift.status == "unavailable"


def payload_spec(**data: Any) -> MonitorSpec:
    return monitor(
        target={"name": "model", "kind": "InferenceService"},
        data={"payloadLog": {"minSamples": 5, "windowSeconds": 600}, **data},
    )


def log_events(store: PayloadStore, rows: Sequence[float]) -> None:
    window = store.window("ml", "watch")
    assert window is not None
    for i, x in enumerate(rows):
        for kind, body in (
            ("request", {"instances": [[x]]}),
            ("response", {"predictions": ["a" if x < 3 else "b"]}),
        ):
            headers = {
                "Content-Type": "application/json",
                "Ce-Id": f"e{i}",
                "Ce-Specversion": "1.0",
                "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
                "Ce-Source": "http://localhost:9081/model",
                "Ce-Inferenceservicename": "model",
                "Ce-Namespace": "ml",
            }
            window.add(parse_event(headers, json.dumps(body).encode()), NOW.timestamp())


def test_payload_log_window_is_the_current_data() -> None:
    store = PayloadStore()
    spec = payload_spec()
    store.register("ml", "watch", spec, "t" * 43)
    log_events(store, [4 + i / 10 for i in range(20)])
    report = run(spec, runner(payloads=store))
    assert report.problems == ()
    assert report.samples == 20
    assert report.details == {"payloadLog": {"rows": 20}}
    assert report.drift.status == "ok"
    assert report.drift.drifted
    assert {f.name for f in report.drift.features} == {"x", "prediction"}


def test_payload_log_below_min_samples_is_insufficient_data() -> None:
    store = PayloadStore()
    spec = payload_spec()
    store.register("ml", "watch", spec, "t" * 43)
    log_events(store, [1.0, 2.0])
    report = run(spec, runner(payloads=store))
    assert report.drift.status == "insufficient_data"
    assert report.drift.message == "2 payload-log sample(s) in the last 600 s (minSamples 5)"
    assert report.samples == 0
    assert report.details == {}
    unregistered = run(spec, runner(payloads=PayloadStore()))
    assert unregistered.drift.message == (
        "no payload-log window for this monitor (the collector runs in the operator)"
    )


def test_a_kafka_feed_that_cannot_read_is_a_problem_of_the_run() -> None:
    """The feed's problem (a wrong password, an untrusted broker) turns the run Degraded
    with PayloadSourceUnavailable, even while the window still holds enough rows."""
    store = PayloadStore()
    spec = payload_spec()
    store.register("ml", "watch", spec, "t" * 43)
    log_events(store, [4 + i / 10 for i in range(20)])
    window = store.window("ml", "watch")
    assert window is not None
    window.source_problem = "Kafka logs via kafka:9093: SASL authentication failed (bad)"
    report = run(spec, runner(payloads=store))
    assert [p.reason for p in report.problems] == ["PayloadSourceUnavailable"]
    assert "SASL authentication failed" in report.problems[0].message
    window.source_problem = None
    assert run(spec, runner(payloads=store)).problems == ()


def test_payload_log_window_replaces_the_probe_answers() -> None:
    store = PayloadStore()
    spec = monitor(
        target={
            "name": "model",
            "kind": "InferenceService",
            "endpoint": {"url": ENDPOINT, "protocol": "json"},
        },
        data={"probe": {"samples": 1000}, "payloadLog": {"minSamples": 5}},
    )
    store.register("ml", "watch", spec, "t" * 43)
    report = run(spec, runner(payloads=store))
    assert report.drift.status == "insufficient_data"
    assert report.samples == 0
    assert list(report.details) == ["probe"]
    log_events(store, [1 + i / 10 for i in range(30)])
    report = run(spec, runner(payloads=store))
    assert report.samples == 30
    assert list(report.details) == ["probe", "payloadLog"]


def test_no_current_data_source_leaves_drift_disabled() -> None:
    report = run(monitor())
    assert report.drift.status == "disabled"
    assert report.drift.message == "no current data source configured"
    assert report.samples == 0
    assert report.problems == ()
    off = run(monitor(data={"probe": {}}, drift={"enabled": False}))
    assert off.drift.status == "disabled"
    assert off.drift.message == ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


PROMETHEUS_SLOS = [
    {
        "name": "api-errors",
        "source": "prometheus",
        "window": "1h",
        "errorRatio": {"errors": "sum(errors)", "total": "sum(requests)"},
    },
    {
        "name": "api-latency",
        "source": "prometheus",
        "window": "1h",
        "latency": {"thresholdMs": 100, "query": "p95_seconds"},
    },
]


def test_prometheus_slos_in_spec_order_with_the_probe_slos() -> None:
    values = {"sum(errors)": "1", "sum(requests)": "1000", "p95_seconds": "0.05"}

    async def query(request: web.Request) -> web.Response:
        value = values[(await request.post()).get("query") or request.query["query"]]
        result = [{"metric": {}, "value": [NOW.timestamp(), value]}]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return web.json_response(body)

    async def scenario() -> Report:
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", query)
        server = web.AppRunner(app)
        await server.setup()
        await web.TCPSite(server, "127.0.0.1", 0).start()
        port = server.addresses[0][1]
        spec = monitor(
            data={"probe": {"samples": 1000}},
            prometheus={"url": f"http://127.0.0.1:{port}"},
            slos=[PROMETHEUS_SLOS[0], PROBE_SLOS[0], PROMETHEUS_SLOS[1]],
        )
        try:
            return await runner().run("ml", "watch", spec, {})
        finally:
            await server.cleanup()

    report = asyncio.run(scenario())
    assert report.problems == ()
    assert [s.name for s in report.slos] == ["api-errors", "errors", "api-latency"]
    assert [s.met for s in report.slos] == [True, True, True]
    assert list(report.details["sloHistory"]) == ["errors", "api-errors", "api-latency"]


def test_problems_in_order_reference_then_prometheus() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    spec = monitor(
        reference={"configMapRef": {"name": "gone", "key": "ref.csv"}},
        data={"probe": {}},
        prometheus={"url": url, "timeoutSeconds": 2},
        slos=[*PROMETHEUS_SLOS, PROBE_SLOS[0]],
    )
    stored = {"sloHistory": {"api-errors": {"kept": 1}}}
    report = run(spec, status=stored)
    assert [p.reason for p in report.problems] == ["ReferenceNotFound", "PrometheusUnavailable"]
    assert report.problems[0].message == (
        "ConfigMap ml/gone key ref.csv: the ConfigMap does not exist"
    )
    assert report.drift.status == "unavailable"
    assert "probe" not in report.details
    assert [(s.name, s.met) for s in report.slos] == [
        ("api-errors", None),
        ("api-latency", None),
        ("errors", None),
    ]
    assert report.slos[0].message.startswith("no data: Prometheus unavailable")
    history = report.details["sloHistory"]
    assert history["api-errors"] == {"kept": 1}
    assert list(history) == ["errors", "api-errors"]


@pytest.mark.parametrize("mode", ["inline", "job"])
def test_the_mode_is_reported(mode: str) -> None:
    inline = InlineRunner(runner().clients, mode=mode)
    assert run(monitor(), inline).mode == mode


class FakeSource:
    """A source that records when it is asked and gives what it is told to."""

    def __init__(self, key: str, asked: list[str], *, rows: int | None = None) -> None:
        self.key = key
        self.supplies_rows = rows is not None
        self.rows = rows
        self.asked = asked

    def configured(self, spec: MonitorSpec) -> bool:
        return True

    async def gather(self, ctx: RunContext) -> Gathered:
        self.asked.append(self.key)
        assert ctx.reference is not None
        current = None
        if self.rows is not None:
            rows = Dataset.from_mapping({"x": [2.0 + i / 100 for i in range(self.rows)]})
            current = CurrentData(rows)
        return Gathered(
            current=current,
            problems=(Problem(f"{self.key}Failed", "as told"),),
            details={self.key: True},
        )


def test_sources_giving_rows_are_asked_first_and_the_last_window_wins() -> None:
    asked: list[str] = []
    sources: Registry[Source] = Registry(
        "data source",
        [
            FakeSource("slis", asked),
            FakeSource("first", asked, rows=15),
            FakeSource("second", asked, rows=25),
        ],
    )
    inline = InlineRunner(runner().clients, sources=sources)
    report = run(monitor(), inline)
    assert asked == ["first", "second", "slis"]
    assert report.samples == 25
    assert report.drift.status == "ok"
    assert [p.reason for p in report.problems] == ["firstFailed", "secondFailed", "slisFailed"]
    assert list(report.details) == ["first", "second", "slis"]


def test_an_slo_of_a_source_nobody_registered_is_an_error() -> None:
    spec = replace(monitor(), slos=(SLOSpec("odd", source="statsd"),))  # type: ignore[arg-type]
    with pytest.raises(UnknownSourceError, match="no data source 'statsd'"):
        run(spec)
