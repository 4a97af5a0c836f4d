"""parse_spec: defaults, typed values, and every cross-field rule naming its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmonitor.core.spec import (
    DaskClusterSpec,
    KafkaSASLSpec,
    LabelsSpec,
    PerformanceSpec,
    SpecError,
    parse_duration,
    parse_spec,
)

ROOT = Path(__file__).resolve().parents[3]
CRD = ROOT / "crds" / "modelmonitor.io_modelmonitors.yaml"

MINIMAL: dict[str, Any] = {
    "target": {"name": "fraud-model"},
    "reference": {"configMapRef": {"name": "fraud-reference", "key": "reference.csv"}},
}


def with_changes(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MINIMAL)
    spec.update(changes)
    return spec


def test_minimal_spec_gets_defaults() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.target.kind == "Deployment"
    assert spec.schedule.interval_seconds == 60
    assert spec.schedule.mode == "inline"
    assert spec.schedule.run_timeout_seconds == 600
    assert (
        parse_spec(with_changes(schedule={"runTimeout": "90s"})).schedule.run_timeout_seconds == 90
    )
    assert spec.drift.method == "auto"
    assert spec.drift.correction == "bonferroni"
    assert spec.drift.drift_share == 0.5
    assert spec.actions.dry_run is False
    assert spec.actions.cooldown_seconds == 600
    assert spec.actions.on_slo_breach == ()
    assert spec.reference.source == "configMap"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("28d", 28 * 86400), ("1w", 604800)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "10 s", "1x", "-5s", "1h 30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("interval too short", with_changes(schedule={"interval": "5s"}), "spec.schedule.interval"),
    (
        "run timeout above 1h",
        with_changes(schedule={"runTimeout": "2h"}),
        "spec.schedule.runTimeout",
    ),
    (
        "run timeout below 1s",
        with_changes(schedule={"runTimeout": "500ms"}),
        "spec.schedule.runTimeout",
    ),
    ("run timeout a number", with_changes(schedule={"runTimeout": 30}), "spec.schedule.runTimeout"),
    ("bad kind", with_changes(target={"name": "x", "kind": "StatefulSet"}), "spec.target.kind"),
    ("no target", {"reference": MINIMAL["reference"]}, "spec.target"),
    (
        "prometheus slo without server",
        with_changes(
            slos=[
                {"name": "a", "source": "prometheus", "errorRatio": {"errors": "e", "total": "t"}}
            ]
        ),
        "spec.prometheus",
    ),
    ("drift share above 1", with_changes(drift={"driftShare": 1.5}), "spec.drift.driftShare"),
    ("unknown method", with_changes(drift={"method": "magic"}), "spec.drift.method"),
    (
        "two reference sources",
        with_changes(
            reference={"url": "http://x/r.csv", "configMapRef": {"name": "a", "key": "b"}}
        ),
        "spec.reference",
    ),
    (
        "rollback on external",
        with_changes(
            target={"name": "x", "kind": "External", "endpoint": {"url": "http://x:1"}},
            actions={"onSLOBreach": ["rollback"]},
        ),
        "spec.actions",
    ),
    ("scale without settings", with_changes(actions={"onDrift": ["scale"]}), "spec.actions.scale"),
    (
        "notify without settings",
        with_changes(actions={"onDrift": ["notify"]}),
        "spec.actions.notify",
    ),
    (
        "categorical method on numerical feature",
        with_changes(features=[{"name": "amount", "type": "numerical", "method": "chi2"}]),
        "spec.features[0].method",
    ),
    (
        "slo with latency and error ratio",
        with_changes(
            data={"probe": {}},
            target={"name": "x", "endpoint": {"url": "http://x:1"}},
            slos=[{"name": "a", "latency": {"thresholdMs": 1}, "errorRatio": {}}],
        ),
        "spec.slos[0]",
    ),
    (
        "probe without endpoint",
        with_changes(data={"probe": {"samples": 10}}),
        "spec.target.endpoint",
    ),
    (
        "pvc reference inline",
        with_changes(reference={"pvc": {"claimName": "c", "path": "/r.csv"}}),
        "spec.reference.pvc",
    ),
    (
        "none combined",
        with_changes(
            actions={
                "onDrift": ["none", "notify"],
                "notify": {"webhookSecretRef": {"name": "s", "key": "k"}},
            }
        ),
        "spec.actions.onDrift",
    ),
    (
        "duplicate features",
        with_changes(features=[{"name": "a"}, {"name": "a"}]),
        "spec.features[1].name",
    ),
]


@pytest.mark.parametrize(("case", "spec", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_specs_name_the_field(case: str, spec: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    paths = [path for path, _ in info.value.problems]
    assert field in paths, f"{case}: expected a problem at {field}, got {info.value}"


def test_all_problems_reported_at_once() -> None:
    spec = with_changes(schedule={"interval": "1s"}, drift={"driftShare": 0})
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    paths = {path for path, _ in info.value.problems}
    assert {"spec.schedule.interval", "spec.drift.driftShare"} <= paths


def _crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]  # type: ignore[no-any-return]


def _collect_defaults(schema: dict[str, Any], path: str, out: dict[str, Any]) -> None:
    for name, sub in (schema.get("properties") or {}).items():
        default = sub.get("default")
        if isinstance(default, dict):
            # An object default must agree with its fields' own defaults.
            for key, value in default.items():
                assert sub["properties"][key].get("default") == value, f"{path}.{name}.{key}"
        elif "default" in sub:
            out[f"{path}.{name}"] = default
        _collect_defaults(sub, f"{path}.{name}", out)
    if "items" in schema:
        _collect_defaults(schema["items"], f"{path}[]", out)


def test_python_defaults_equal_crd_defaults() -> None:
    """A spec parsed without API-server defaulting must mean the same as one with it."""
    defaults: dict[str, Any] = {}
    _collect_defaults(_crd_schema(), "spec", defaults)
    full = {
        "target": {"name": "m", "endpoint": {"url": "http://m:8080", "json": {}}},
        "reference": {"configMapRef": {"name": "r", "key": "k"}},
        "schedule": {"job": {}},
        "features": [{"name": "f"}],
        "prediction": {},
        "data": {"probe": {"dataset": {"inline": [{"a": 1}]}}, "payloadLog": {}},
        "slos": [{"name": "s", "latency": {"thresholdMs": 100}}],
        "prometheus": {
            "url": "https://p:9090",
            "authorization": {"credentials": {"name": "t", "key": "k"}},
            "tlsConfig": {},
        },
        "actions": {
            "scale": {"maxReplicas": 3},
            "notify": {"webhookSecretRef": {"name": "a", "key": "b"}},
        },
        "drift": {"multivariate": {}},
        "alerting": {"sinks": [{"name": "am", "type": "alertmanager", "url": "http://am:9093"}]},
        "anomalies": [{"name": "a", "query": "up", "floor": {}}],
    }
    spec = parse_spec(full)
    a = spec.anomalies[0]
    expected = {
        "spec.target.kind": spec.target.kind,
        "spec.target.endpoint.protocol": spec.target.endpoint.protocol
        if spec.target.endpoint
        else None,
        "spec.target.endpoint.json.inputField": spec.target.endpoint.input_field
        if spec.target.endpoint
        else None,
        "spec.target.endpoint.json.outputField": spec.target.endpoint.output_field
        if spec.target.endpoint
        else None,
        "spec.schedule.interval": "60s" if spec.schedule.interval_seconds == 60 else None,
        "spec.schedule.mode": spec.schedule.mode,
        "spec.schedule.runTimeout": "10m" if spec.schedule.run_timeout_seconds == 600 else None,
        "spec.schedule.job.activeDeadlineSeconds": spec.schedule.job_active_deadline_seconds,
        "spec.schedule.dask.cluster.workers": DaskClusterSpec.workers,
        "spec.reference.format": spec.reference.format,
        "spec.features[].type": spec.features[0].type,
        "spec.prediction.name": spec.prediction.name if spec.prediction else None,
        "spec.prediction.type": spec.prediction.type if spec.prediction else None,
        "spec.data.probe.samples": spec.probe.samples if spec.probe else None,
        "spec.data.probe.concurrency": spec.probe.concurrency if spec.probe else None,
        "spec.data.probe.retries": spec.probe.retries if spec.probe else None,
        "spec.data.probe.batchSize": spec.probe.batch_size if spec.probe else None,
        "spec.data.probe.dataset.format": (
            spec.probe.dataset.format if spec.probe and spec.probe.dataset else None
        ),
        "spec.data.payloadLog.minSamples": spec.payload_log.min_samples
        if spec.payload_log
        else None,
        "spec.data.payloadLog.maxSamples": spec.payload_log.max_samples
        if spec.payload_log
        else None,
        "spec.drift.enabled": spec.drift.enabled,
        "spec.drift.method": spec.drift.method,
        "spec.drift.correction": spec.drift.correction,
        "spec.drift.driftShare": spec.drift.drift_share,
        "spec.drift.minSamples": spec.drift.min_samples,
        "spec.drift.multivariate.enabled": spec.drift.multivariate.enabled,
        "spec.drift.multivariate.permutations": spec.drift.multivariate.permutations,
        "spec.drift.multivariate.maxSamples": spec.drift.multivariate.max_samples,
        "spec.slos[].source": spec.slos[0].source,
        "spec.slos[].objective": spec.slos[0].objective,
        "spec.slos[].window": "28d" if spec.slos[0].window_seconds == 28 * 86400 else None,
        "spec.slos[].latency.percentile": spec.slos[0].latency.percentile
        if spec.slos[0].latency
        else None,
        "spec.prometheus.authorization.type": spec.prometheus.authorization_type
        if spec.prometheus
        else None,
        "spec.prometheus.tlsConfig.insecureSkipVerify": spec.prometheus.tls.insecure_skip_verify
        if spec.prometheus and spec.prometheus.tls
        else None,
        "spec.actions.dryRun": spec.actions.dry_run,
        "spec.actions.consecutiveBreaches": spec.actions.consecutive_breaches,
        "spec.actions.maxActionsPerHour": spec.actions.max_actions_per_hour,
        "spec.actions.gitops": spec.actions.gitops,
        "spec.actions.scale.step": spec.actions.scale.step if spec.actions.scale else None,
        "spec.actions.notify.format": spec.actions.notify.format if spec.actions.notify else None,
        "spec.performance.task": PerformanceSpec.task,
        "spec.performance.confidence": PerformanceSpec.confidence,
        "spec.performance.minRows": PerformanceSpec.min_rows,
        "spec.performance.predictionOutput": PerformanceSpec.prediction_output,
        "spec.performance.labels.source": LabelsSpec.source,
        "spec.performance.labels.labelDelay": "1d" if LabelsSpec.delay_seconds == 86400 else None,
        "spec.performance.labels.maxPredictions": LabelsSpec.max_predictions,
        "spec.alerting.sinks[].minSeverity": spec.alerting.sinks[0].min_severity,
        "spec.alerting.sinks[].resendSeconds": spec.alerting.sinks[0].resend_seconds,
        "spec.anomalies[].step": "5m" if a.step_seconds == 300 else None,
        "spec.anomalies[].lookback": "14d" if a.lookback_seconds == 14 * 86400 else None,
        "spec.anomalies[].for": "10m" if a.for_seconds == 600 else None,
        "spec.anomalies[].sensitivity": a.sensitivity,
        "spec.anomalies[].warmupCycles": a.warmup_cycles,
        "spec.anomalies[].floor.absolute": a.absolute_floor,
        "spec.anomalies[].floor.relative": a.relative_floor,
        "spec.data.payloadLog.kafka.sasl.allowWithoutTLS": KafkaSASLSpec.allow_without_tls,
    }
    # Object storage sources (spec.reference and the probe set share their schema).
    for source in ("s3", "gcs"):
        stored = {"bucket": "refs", "key": "k.csv", "secretRef": {"name": "creds"}}
        ref = parse_spec({**full, "reference": {source: stored}}).reference.object_storage
        assert ref is not None
        for where in ("spec.reference", "spec.data.probe.dataset"):
            expected[f"{where}.{source}.secretRef.accessKeyIdKey"] = ref.credentials[
                "accessKeyId"
            ].key
            expected[f"{where}.{source}.secretRef.secretAccessKeyKey"] = ref.credentials[
                "secretAccessKey"
            ].key
            if source == "s3":
                expected[f"{where}.s3.region"] = ref.region
                expected[f"{where}.s3.forcePathStyle"] = ref.path_style
        # spec.data.partitions names a prefix with the same fields
        prefix = {"bucket": "refs", "prefix": "p/", "secretRef": {"name": "creds"}}
        data = {**full.get("data", {}), "partitions": {source: prefix}}
        part = parse_spec({**full, "data": data}).partitions
        assert part is not None
        assert part.object_storage is not None
        stored_prefix = part.object_storage
        where = "spec.data.partitions"
        for role in ("accessKeyId", "secretAccessKey"):
            key = stored_prefix.credentials[role].key
            expected[f"{where}.{source}.secretRef.{role}Key"] = key
        if source == "s3":
            expected[f"{where}.s3.region"] = stored_prefix.region
            expected[f"{where}.s3.forcePathStyle"] = stored_prefix.path_style
        expected[f"{where}.maxObjects"] = part.max_objects
    assert defaults == expected


def test_an_action_list_holding_non_names_is_a_spec_error() -> None:
    # found by tests/unit/fuzz: a nested list here raised TypeError (unhashable)
    spec = with_changes(actions={"onSLOBreach": [["rollback"]], "onDrift": [{"a": 1}]})
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert "spec.actions.onSLOBreach" in str(info.value)
    assert "must be a list of action names" in str(info.value)


def test_job_resources_that_are_not_an_object_are_a_spec_error() -> None:
    # found by tests/unit/fuzz: dict() of a number or a string raised TypeError/ValueError
    for bad in (1, "0", ["cpu"]):
        spec = with_changes(schedule={"mode": "job", "job": {"resources": bad}})
        with pytest.raises(SpecError, match=r"spec\.schedule\.job\.resources: must be an object"):
            parse_spec(spec)
