"""spec.performance in a run: the reference's calibration fitted once, the probe's class
probabilities estimated against it, status, conditions, metrics and the policy.

The model is a fake Open Inference Protocol server at the probe's transport (the edge),
answering ``predict`` and ``predict_proba`` as MLServer's scikit-learn runtime does; the
e2e test (tests/e2e/test_performance.py) runs the real one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modelmonitor.adapters.metrics import MetricsRecorder
from modelmonitor.core.codecs.cloudevents import parse_event
from modelmonitor.core.incident import Incident
from modelmonitor.core.policy import PolicyContext, Signal, observe, step
from modelmonitor.core.report import DriftSummary, Report
from modelmonitor.core.spec import MonitorSpec, PerformanceSpec, parse_spec
from modelmonitor.core.stats.performance import classification_performance
from modelmonitor.core.stats.performance.monitor import floor_of, summarize
from modelmonitor.core.verdict import decide
from modelmonitor.engine.performance import evaluate
from modelmonitor.engine.runner import InlineRunner
from modelmonitor.sources.base import Clients, Scored
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.probe import HttpReply
from modelmonitor.sources.reference import ReferenceCache
from tests.unit.loopback import LOOPBACK_ALLOWED
from tests.unit.operator.test_runner import Objects

NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
ENDPOINT = "http://model.test"
RNG = np.random.default_rng(7)
X = RNG.random(800)
Y = (RNG.random(800) < X).astype(int)  # P(y=1 | x) = x: the scores below are calibrated
REFERENCE = [
    {"x": float(x), "y": int(y), "p0": float(1 - x), "p1": float(x)}
    for x, y in zip(X, Y, strict=True)
]


class Model:
    """A v2 server: ``predict_proba`` = (1 - s, s) with s = 0.5 + shrink * (x - 0.5)."""

    def __init__(self, shrink: float = 1.0, *, proba: bool = True, nan: bool = False) -> None:
        self.shrink, self.proba, self.nan = shrink, proba, nan
        self.asked: list[Any] = []

    async def post(
        self, url: str, body: bytes, *, timeout: float, headers: Mapping[str, str]
    ) -> HttpReply:
        request = json.loads(body)
        self.asked.append(request.get("outputs"))
        x = np.asarray(request["inputs"][0]["data"], dtype=float).ravel()
        s = 0.5 + self.shrink * (x - 0.5)
        if self.nan:
            s[:] = np.nan
        outputs = [
            {
                "name": "predict",
                "shape": [x.size],
                "datatype": "INT64",
                "data": (s >= 0.5).astype(int).tolist(),
            },
        ]
        if self.proba:
            probs = np.column_stack([1 - s, s])
            outputs.append(
                {
                    "name": "predict_proba",
                    "shape": [x.size, 2],
                    "datatype": "FP64",
                    "data": [None if np.isnan(v) else v for v in probs.ravel()],
                }
            )
        return HttpReply(200, json.dumps({"model_name": "m", "outputs": outputs}).encode())


def monitor(**performance: Any) -> MonitorSpec:
    return parse_spec(
        {
            "target": {
                "name": "m",
                "kind": "External",
                "endpoint": {"url": ENDPOINT, "protocol": "v2", "model": "m"},
            },
            "reference": {"inline": REFERENCE},
            "features": [{"name": "x", "type": "numerical"}],
            "data": {"probe": {"samples": 400, "batchSize": 50, "retries": 0}},
            "performance": {
                "target": "y",
                "probabilities": ["p0", "p1"],
                "probabilityOutput": "predict_proba",
                **performance,
            },
            "actions": {
                "consecutiveBreaches": 2,
                "onPerformanceDrop": ["notify"],
                "notify": {"webhookSecretRef": {"name": "hook", "key": "url"}},
            },
        }
        | ({} if performance.get("minimum") is not None else {"actions": {}})
    )


def runner(model: Model | ModelV1, cache: ReferenceCache | None = None) -> InlineRunner:
    objects = Objects()
    return InlineRunner(
        Clients(
            references=cache or ReferenceCache(objects, outbound=LOOPBACK_ALLOWED),
            lookup=objects,
            clock=lambda: NOW,
            outbound=LOOPBACK_ALLOWED,
            transport=model,
        )
    )


def run(spec: MonitorSpec, inline: InlineRunner) -> Report:
    return asyncio.run(inline.run("ml", "perf", spec, {}))


def test_a_calibrated_model_is_estimated_near_its_accuracy_and_passes() -> None:
    model = Model()
    report = run(monitor(minimum={"accuracy": 0.6}), runner(model))
    perf = report.performance
    assert perf is not None
    assert perf["status"] == "ok", perf
    assert perf["basis"] == "estimated"
    assert perf["rows"] == 400
    est = perf["estimated"]["accuracy"]
    # Bayes accuracy of P(y=1|x) = x, x ~ U(0, 1): E[max(x, 1 - x)] = 0.75.
    assert est["value"] == pytest.approx(0.75, abs=0.04)
    assert est["lower"] < est["value"] < est["upper"]
    assert perf["reference"]["accuracy"] == pytest.approx(0.75, abs=0.04)
    assert set(perf["estimated"]) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    # The probe asked the server for both outputs; the probability columns are no inputs.
    assert model.asked[0] == [{"name": "predict"}, {"name": "predict_proba"}]
    verdict = decide(report, {}, generation=1, now=NOW)
    assert verdict.status_patch["performance"] == perf
    cond = {c.type: c for c in verdict.conditions}["PerformanceDegraded"]
    assert (cond.status, cond.reason) == ("False", "PerformanceMet")


def test_the_calibration_is_fitted_once_per_reference() -> None:
    objects = Objects()
    cache = ReferenceCache(objects, outbound=LOOPBACK_ALLOWED)
    inline = runner(Model(), cache)
    spec = monitor()
    run(spec, inline)
    loaded = asyncio.run(cache.load("ml", "perf", spec.reference, _plan(spec)))
    fitted = [v for k, v in loaded.derived.items() if k[0] == "performance"]
    assert len(fitted) == 1
    run(spec, inline)
    again = [v for k, v in loaded.derived.items() if k[0] == "performance"]
    assert len(again) == 1
    assert again[0] is fitted[0]


def _plan(spec: MonitorSpec) -> Any:
    from modelmonitor.sources.base import prediction_features
    from modelmonitor.sources.reference import ColumnPlan

    return ColumnPlan.from_spec(spec.features, prediction_features(spec))


def test_a_less_confident_model_drops_the_estimate_below_the_floor_and_acts() -> None:
    spec = monitor(minimum={"accuracy": 0.7})
    report = run(spec, runner(Model(shrink=0.1)))
    perf = report.performance
    assert perf is not None
    assert perf["status"] == "degraded", perf
    assert perf["breached"] == ["accuracy"]
    assert perf["estimated"]["accuracy"]["upper"] < 0.7
    verdict = decide(report, {}, generation=1, now=NOW)
    cond = {c.type: c for c in verdict.conditions}["PerformanceDegraded"]
    assert (cond.status, cond.reason) == ("True", "EstimatedPerformanceDropped")
    assert "estimated accuracy" in cond.message
    assert verdict.phase.value == "Breached"
    assert any(e.reason == "EstimatedPerformanceDropped" for e in verdict.events)
    obs = observe(verdict.current, verdict.phase.value, verdict.slos, frozenset())
    assert obs.signal == Signal.BREACH
    assert obs.triggers == frozenset({"performance"})
    # Through the incident machinery: consecutiveBreaches (2) runs, then notify once.
    incident = Incident.from_dict({})
    planned = []
    for minute in range(3):
        ctx = PolicyContext(
            "ml",
            "perf",
            "uid",
            spec.actions,
            "External",
            "m",
            False,
            NOW + dt.timedelta(minutes=minute),
        )
        decision = step(obs, incident, ctx)
        incident = decision.incident
        planned.append([r.action for r in decision.requests])
    assert planned[0] == []
    assert planned[1] == ["notify"]


def test_dry_run_plans_but_the_policy_reports_only() -> None:
    spec = monitor(minimum={"accuracy": 0.7})
    actions = replace(spec.actions, dry_run=True, consecutive_breaches=1)
    report = run(spec, runner(Model(shrink=0.1)))
    verdict = decide(report, {}, generation=1, now=NOW)
    obs = observe(verdict.current, verdict.phase.value, verdict.slos, frozenset())
    ctx = PolicyContext("ml", "perf", "uid", actions, "External", "m", False, NOW)
    decision = step(obs, Incident.from_dict({}), ctx)
    assert [r.action for r in decision.requests] == ["notify"]
    assert all(r.dry_run for r in decision.requests)


@pytest.mark.parametrize(
    ("model", "words"),
    [
        (Model(proba=False), "no class probabilities"),
        (Model(nan=True), "no class probabilities"),  # null in FP64: a bad answer
    ],
    ids=["no probabilities", "NaN"],
)
def test_bad_data_is_insufficient_and_never_a_breach(model: Model, words: str) -> None:
    spec = monitor(minimum={"accuracy": 0.99})
    report = run(spec, runner(model))
    perf = report.performance
    assert perf is not None
    assert perf["status"] == "insufficient_data"
    assert words in perf["message"]
    verdict = decide(report, {}, generation=1, now=NOW)
    cond = {c.type: c for c in verdict.conditions}["PerformanceDegraded"]
    assert cond.status == "Unknown"
    obs = observe(verdict.current, verdict.phase.value, verdict.slos, frozenset())
    assert obs.signal != Signal.BREACH


def test_rows_with_nan_probabilities_do_not_count() -> None:
    spec = monitor(minimum={"accuracy": 0.99})
    assert spec.performance is not None
    cache = ReferenceCache(Objects(), outbound=LOOPBACK_ALLOWED)
    loaded = asyncio.run(cache.load("ml", "perf", spec.reference, _plan(spec)))
    proba = np.full((300, 2), 0.5)
    proba[:250] = np.nan
    status = evaluate(spec.performance, loaded, Scored(proba), None)
    assert status["status"] == "insufficient_data"
    assert "50 row(s) with finite probabilities < minRows 100" in status["message"]
    wrong = evaluate(spec.performance, loaded, Scored(np.full((300, 3), 0.3)), None)
    assert "3 probability column(s), the reference has 2" in wrong["message"]


def test_too_few_rows_is_insufficient() -> None:
    spec = monitor(minimum={"accuracy": 0.99}, minRows=1000)
    perf = run(spec, runner(Model())).performance
    assert perf is not None
    assert perf["status"] == "insufficient_data"
    assert "400 row(s)" in perf["message"]


def test_a_reference_without_the_columns_is_insufficient() -> None:
    spec = monitor(probabilities=["p0", "nope"])
    perf = run(spec, runner(Model())).performance
    assert perf is not None
    assert perf["status"] == "insufficient_data"
    assert "lacks column(s) nope" in perf["message"]


# --- the pure judgment --------------------------------------------------------------------


def test_the_floor_is_the_tighter_of_minimum_and_max_drop() -> None:
    spec = PerformanceSpec("y", ("p",), minimum={"f1": 0.6}, max_drop={"f1": 0.1})
    assert floor_of(spec, "f1", 0.8) == pytest.approx(0.7)
    assert floor_of(spec, "f1", 0.65) == pytest.approx(0.6)
    assert floor_of(spec, "f1", None) == pytest.approx(0.6)
    assert floor_of(spec, "accuracy", 0.9) is None


def test_a_breach_needs_the_whole_interval_below_the_floor() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(2000)
    y = (rng.random(2000) < p).astype(int)
    report = classification_performance(y, p, p[:200])
    est = report.estimated
    assert est is not None
    value = est["accuracy"].value
    upper = est["accuracy"].upper
    assert value is not None
    assert upper is not None
    # A floor between the value and the upper bound: noise, no breach.
    noisy = PerformanceSpec("y", ("p",), minimum={"accuracy": (value + upper) / 2})
    assert summarize(report, noisy).status == "ok"
    confident = PerformanceSpec("y", ("p",), minimum={"accuracy": upper + 0.01})
    assert summarize(report, confident).status == "degraded"


def test_realized_values_are_judged_when_enough_rows_have_labels() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(2000)
    y = (rng.random(2000) < p).astype(int)
    pc = rng.random(300)
    yc = (rng.random(300) < 1 - pc).astype(int)  # concept drift: the scores flipped
    report = classification_performance(y, p, pc, current_y=yc)
    summary = summarize(report, PerformanceSpec("y", ("p",), minimum={"accuracy": 0.6}))
    assert summary.status == "degraded"
    assert summary.metrics[0].basis == "realized"
    assert summary.concept_drift
    status = summary.to_status()
    verdict = decide(
        Report(NOW, 0.1, "inline", 300, DriftSummary("disabled"), performance=status),
        {},
        generation=1,
        now=NOW,
    )
    found = {c.type: c for c in verdict.conditions}
    assert found["PerformanceDegraded"].reason == "RealizedPerformanceDropped"
    assert (found["ConceptDrift"].status, found["ConceptDrift"].reason) == ("True", "ConceptDrift")


def test_metrics_export_the_estimate_with_its_bounds() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    status = summarize(
        classification_performance(y, p, p[:300]), PerformanceSpec("y", ("p",))
    ).to_status()
    report = Report(NOW, 0.1, "inline", 300, DriftSummary("disabled"), performance=status)
    recorder = MetricsRecorder(CollectorRegistry())
    verdict = decide(report, {}, generation=1, now=NOW)
    recorder.record_run("ml", "perf", report, verdict, 0.0)
    get = recorder.registry.get_sample_value
    labels = {"namespace": "ml", "monitor": "perf", "metric": "accuracy"}
    for bound in ("value", "lower", "upper"):
        value = get("modelmonitor_performance_estimated", {**labels, "bound": bound})
        assert value == pytest.approx(status["estimated"]["accuracy"][bound])
    assert get("modelmonitor_performance_reference", labels) is not None
    # A later run without an estimate removes the series.
    empty = Report(
        NOW,
        0.1,
        "inline",
        0,
        DriftSummary("disabled"),
        performance={
            "status": "insufficient_data",
            "rows": 0,
            "labelledRows": 0,
            "conceptDrift": False,
        },
    )
    recorder.record_run("ml", "perf", empty, decide(empty, {}, generation=1, now=NOW), 0.0)
    assert get("modelmonitor_performance_estimated", {**labels, "bound": "value"}) is None


class ModelV1:
    """A KServe v1 server whose ``predictions`` are per-class probability lists (what a
    scikit-learn server configured for ``predict_proba`` answers)."""

    async def post(
        self, url: str, body: bytes, *, timeout: float, headers: Mapping[str, str]
    ) -> HttpReply:
        assert url == f"{ENDPOINT}/v1/models/m:predict"
        x = np.asarray(json.loads(body)["instances"], dtype=float)[:, 0]
        predictions = np.column_stack([1 - x, x]).tolist()
        return HttpReply(200, json.dumps({"predictions": predictions}).encode())


def test_v1_per_class_lists_are_the_probabilities() -> None:
    spec = parse_spec(
        {
            "target": {
                "name": "m",
                "kind": "External",
                "endpoint": {"url": ENDPOINT, "protocol": "v1", "model": "m"},
            },
            "reference": {"inline": REFERENCE},
            "features": [{"name": "x", "type": "numerical"}],
            "data": {"probe": {"samples": 300, "batchSize": 100, "retries": 0}},
            "performance": {"target": "y", "probabilities": ["p0", "p1"]},
        }
    )
    perf = run(spec, runner(ModelV1())).performance
    assert perf is not None
    assert perf["status"] == "ok", perf
    assert perf["rows"] == 300
    assert perf["estimated"]["accuracy"]["value"] == pytest.approx(0.75, abs=0.05)


# --- payload logs -------------------------------------------------------------------------


def _log(store: PayloadStore, xs: np.ndarray, *, proba: bool = True, start: int = 0) -> None:
    window = store.window("ml", "perf")
    assert window is not None
    for i, x in enumerate(xs.tolist()):
        response: dict[str, Any] = (
            {"predictions": [[1 - x, x]]} if proba else {"predictions": [int(x >= 0.5)]}
        )
        for kind, body in (("request", {"instances": [[x]]}), ("response", response)):
            headers = {
                "Content-Type": "application/json",
                "Ce-Id": f"e{start + i}",
                "Ce-Specversion": "1.0",
                "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
                "Ce-Source": "http://localhost:9081/m",
                "Ce-Inferenceservicename": "m",
                "Ce-Namespace": "ml",
            }
            window.add(parse_event(headers, json.dumps(body).encode()), NOW.timestamp())


def _payload_spec(**performance: Any) -> MonitorSpec:
    return parse_spec(
        {
            "target": {"name": "m", "kind": "InferenceService"},
            "reference": {"inline": REFERENCE},
            "features": [{"name": "x", "type": "numerical"}],
            "data": {"payloadLog": {"minSamples": 50, "windowSeconds": 600}},
            "performance": {"target": "y", "probabilities": ["p0", "p1"], **performance},
        }
    )


def test_payload_log_probabilities_are_estimated() -> None:
    """KServe v1 responses logged with per-class lists: the window keeps them per row."""
    store = PayloadStore()
    spec = _payload_spec(minimum={"accuracy": 0.6})
    store.register("ml", "perf", spec, "t" * 43)
    _log(store, np.random.default_rng(5).random(300))
    inline = runner(Model())
    inline = InlineRunner(replace(inline.clients, payloads=store))
    perf = asyncio.run(inline.run("ml", "perf", spec, {})).performance
    assert perf is not None
    assert perf["status"] == "ok", perf
    assert perf["rows"] == 300
    assert perf["estimated"]["accuracy"]["value"] == pytest.approx(0.75, abs=0.05)


def test_payload_log_rows_without_probabilities_do_not_count() -> None:
    store = PayloadStore()
    spec = _payload_spec(minRows=200)
    store.register("ml", "perf", spec, "t" * 43)
    rng = np.random.default_rng(6)
    _log(store, rng.random(150))
    _log(store, rng.random(150), proba=False, start=150)  # a model version without them
    inline = InlineRunner(replace(runner(Model()).clients, payloads=store))
    perf = asyncio.run(inline.run("ml", "perf", spec, {})).performance
    assert perf is not None
    assert perf["status"] == "insufficient_data"
    assert "150 row(s) with finite probabilities < minRows 200" in perf["message"]
