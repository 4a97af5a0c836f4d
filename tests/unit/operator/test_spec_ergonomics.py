"""The spec's ergonomics: an optional reference, probeErrors, one duration style.

Every v1alpha1 spec keeps its meaning: the old numeric fields (cooldownSeconds,
thresholdMs, ...) and errorRatio: {} for probe errors still parse, and are listed as
deprecated; setting an old and a new form together is refused, except for the value
older CRDs stored as the old field's default.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmonitor.core.spec import SpecError, parse_spec
from modelmonitor.core.spec.model import (
    LEGACY_DEFAULTS,
    ActionsSpec,
    PayloadLogSpec,
    ProbeSpec,
    PrometheusSpec,
    ScaleSpec,
)

PROBE_SET = {"inline": [{"a": 1.0, "b": 2.0}]}
TARGET = {"name": "m", "endpoint": {"url": "http://m:8080"}}
REFERENCE = {"configMapRef": {"name": "r", "key": "k"}}


def problems(spec: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return dict(info.value.problems)


# -- spec.reference: required exactly where a check needs it --------------------------------


def test_prometheus_slo_only_monitor_needs_no_reference() -> None:
    spec = parse_spec(
        {
            "target": {"name": "m"},
            "prometheus": {"url": "http://p:9090"},
            "slos": [
                {
                    "name": "avail",
                    "source": "prometheus",
                    "errorRatio": {"errors": "e[$window]", "total": "t[$window]"},
                }
            ],
        }
    )
    assert spec.reference is None


def test_probe_slo_with_own_probe_set_and_drift_off_needs_no_reference() -> None:
    spec = parse_spec(
        {
            "target": TARGET,
            "data": {"probe": {"dataset": PROBE_SET}},
            "drift": {"enabled": False},
            "slos": [{"name": "errors", "probeErrors": {}}],
        }
    )
    assert spec.reference is None
    assert spec.slos[0].probe_errors


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"data": {"probe": {}}, "drift": {"enabled": False}}, "spec.data.probe sends a sample"),
        ({"data": {"probe": {"dataset": PROBE_SET}}}, "drift detection and data quality"),
        (
            {"data": {"payloadLog": {}}, "drift": {"enabled": False}},
            "spec.data.payloadLog takes",
        ),
    ],
    ids=["probe-without-set", "drift-on-by-default", "payload-log"],
)
def test_reference_required_names_what_needs_it(spec: dict[str, Any], needle: str) -> None:
    found = problems({"target": TARGET, **spec})
    assert needle in found["spec.reference"], found


def test_old_specs_with_a_reference_are_unchanged() -> None:
    spec = parse_spec({"target": TARGET, "reference": REFERENCE, "data": {"probe": {}}})
    assert spec.reference is not None
    assert spec.reference.config_map_name == "r"


# -- probeErrors ------------------------------------------------------------------------------


def _probe_monitor(*slos: dict[str, Any]) -> dict[str, Any]:
    return {"target": TARGET, "reference": REFERENCE, "data": {"probe": {}}, "slos": list(slos)}


def test_probe_errors_and_the_old_empty_error_ratio_mean_the_same() -> None:
    new = parse_spec(_probe_monitor({"name": "e", "probeErrors": {}}))
    old = parse_spec(_probe_monitor({"name": "e", "errorRatio": {}}))
    assert new.slos == old.slos
    assert new.deprecations == ()
    assert old.deprecations == (
        ("spec.slos[0].errorRatio", "deprecated with source probe: use probeErrors: {}"),
    )


def test_probe_errors_refuses_prometheus_and_a_second_sli() -> None:
    found = problems(
        {
            **_probe_monitor({"name": "e", "probeErrors": {}, "errorRatio": {}}),
            "prometheus": {"url": "http://p:9090"},
        }
    )
    assert "exactly one of latency, errorRatio or probeErrors" in found["spec.slos[0]"]
    found = problems(
        {
            **_probe_monitor({"name": "e", "source": "prometheus", "probeErrors": {}}),
            "prometheus": {"url": "http://p:9090"},
        }
    )
    assert "needs source probe" in found["spec.slos[0].probeErrors"]


# -- durations --------------------------------------------------------------------------------

NEW_STYLE = {
    "target": TARGET,
    "reference": REFERENCE,
    "data": {"probe": {"timeout": "1500ms"}, "payloadLog": {"window": "2d"}},
    "prometheus": {"url": "http://p:9090", "timeout": "30s"},
    "slos": [{"name": "p95", "latency": {"threshold": "250ms"}}],
    "actions": {
        "cooldown": "1h30m",
        "onSLOBreach": ["scale"],
        "scale": {"maxReplicas": 3, "stabilizationWindow": "10m"},
    },
}
OLD_STYLE = {
    **NEW_STYLE,
    "data": {"probe": {"timeoutSeconds": 1.5}, "payloadLog": {"windowSeconds": 172800}},
    "prometheus": {"url": "http://p:9090", "timeoutSeconds": 30},
    "slos": [{"name": "p95", "latency": {"thresholdMs": 250}}],
    "actions": {
        "cooldownSeconds": 5400,
        "onSLOBreach": ["scale"],
        "scale": {"maxReplicas": 3, "stabilizationSeconds": 600},
    },
}


def test_new_and_old_duration_fields_mean_the_same() -> None:
    new, old = parse_spec(NEW_STYLE), parse_spec(OLD_STYLE)
    assert new.probe == old.probe
    assert new.probe is not None
    assert new.probe.timeout_seconds == 1.5
    assert new.payload_log == old.payload_log == PayloadLogSpec(window_seconds=172800)
    assert new.prometheus == old.prometheus
    assert new.prometheus is not None
    assert new.prometheus.timeout_seconds == 30
    assert new.slos == old.slos
    assert new.slos[0].latency is not None
    assert new.slos[0].latency.threshold_ms == 250
    assert new.actions == old.actions
    assert new.actions.cooldown_seconds == 5400
    assert new.actions.scale == ScaleSpec(max_replicas=3, stabilization_seconds=600)
    assert new.deprecations == ()
    assert dict(old.deprecations) == {
        "spec.data.probe.timeoutSeconds": "deprecated: use timeout (a duration)",
        "spec.data.payloadLog.windowSeconds": "deprecated: use window (a duration)",
        "spec.prometheus.timeoutSeconds": "deprecated: use timeout (a duration)",
        "spec.slos[0].latency.thresholdMs": "deprecated: use threshold (a duration)",
        "spec.actions.cooldownSeconds": "deprecated: use cooldown (a duration)",
        "spec.actions.scale.stabilizationSeconds": (
            "deprecated: use stabilizationWindow (a duration)"
        ),
    }


def test_threshold_in_milliseconds_is_exact() -> None:
    # 0.123 s * 1000 is 123.00000000000001 in floating point: a template's bucket match
    # (le="0.123") needs the exact number.
    spec = copy.deepcopy(NEW_STYLE)
    spec["slos"][0]["latency"]["threshold"] = "123ms"
    latency = parse_spec(spec).slos[0].latency
    assert latency is not None
    assert latency.threshold_ms == 123


def test_setting_both_forms_is_refused_naming_the_new_field() -> None:
    spec = copy.deepcopy(NEW_STYLE)
    spec["actions"]["cooldownSeconds"] = 300
    spec["slos"][0]["latency"]["thresholdMs"] = 250
    spec["data"]["probe"]["timeoutSeconds"] = 3
    found = problems(spec)
    assert "not both" in found["spec.actions.cooldown"]
    assert "not both" in found["spec.slos[0].latency.threshold"]
    assert "not both" in found["spec.data.probe.timeout"]


def test_the_default_older_crds_stored_may_stay_beside_the_new_field() -> None:
    """Objects created under the old CRD hold e.g. cooldownSeconds: 600, defaulted by the
    API server; updating them to cooldown must not need a JSON patch first."""
    spec = copy.deepcopy(NEW_STYLE)
    spec["actions"]["cooldownSeconds"] = 600
    spec["actions"]["scale"]["stabilizationSeconds"] = 300
    spec["data"]["probe"]["timeoutSeconds"] = 2
    spec["data"]["payloadLog"]["windowSeconds"] = 3600
    spec["prometheus"]["timeoutSeconds"] = 5
    parsed = parse_spec(spec)
    assert parsed.actions.cooldown_seconds == 5400  # the new field wins
    assert parsed.probe is not None
    assert parsed.probe.timeout_seconds == 1.5
    assert parsed.deprecations == ()


def test_legacy_defaults_are_the_parser_defaults() -> None:
    """The tolerated old values are the defaults the fields still have."""
    assert {
        "spec.data.probe.timeoutSeconds": ProbeSpec.timeout_seconds,
        "spec.data.payloadLog.windowSeconds": PayloadLogSpec.window_seconds,
        "spec.prometheus.timeoutSeconds": PrometheusSpec.timeout_seconds,
        "spec.actions.cooldownSeconds": ActionsSpec.cooldown_seconds,
        "spec.actions.scale.stabilizationSeconds": ScaleSpec.stabilization_seconds,
    } == LEGACY_DEFAULTS


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("actions.cooldown", "8d", "spec.actions.cooldown", "at most 7d"),
        ("actions.cooldown", "soon", "spec.actions.cooldown", "not a duration"),
        ("actions.cooldown", 600, "spec.actions.cooldown", "duration string"),
        ("data.payloadLog.window", "30s", "spec.data.payloadLog.window", "at least 1m"),
        ("data.probe.timeout", "0s", "spec.data.probe.timeout", "more than 0s"),
        ("prometheus.timeout", "3m", "spec.prometheus.timeout", "at most 2m"),
        ("slos.0.latency.threshold", "0ms", "spec.slos[0].latency.threshold", "more than 0ms"),
        (
            "actions.scale.stabilizationWindow",
            "25h",
            "spec.actions.scale.stabilizationWindow",
            "at most 1d",
        ),
    ],
)
def test_durations_out_of_range_are_refused(
    path: str, value: Any, field: str, message: str
) -> None:
    spec = copy.deepcopy(NEW_STYLE)
    node: Any = spec
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    node[keys[-1]] = value
    found = problems(spec)
    assert message in found[field], found


def test_latency_needs_a_threshold() -> None:
    spec = copy.deepcopy(NEW_STYLE)
    spec["slos"][0]["latency"] = {"percentile": 99}
    assert "is required" in problems(spec)["spec.slos[0].latency.threshold"]


def test_deprecations_reach_the_ready_condition() -> None:
    import datetime as dt

    from modelmonitor.engine.validation import evaluate

    class NoLookup:
        def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            return {"data": {"k": "x"}} if kind == "ConfigMap" else {"spec": {}}

    body = {"metadata": {"namespace": "ml", "generation": 1}, "spec": OLD_STYLE}
    result = evaluate(body, NoLookup(), now=dt.datetime.now(dt.UTC))  # type: ignore[arg-type]
    assert result.valid, result.ready
    assert result.ready.status == "True"
    assert "spec.actions.cooldownSeconds is deprecated: use cooldown" in result.ready.message


# -- the CRD says the same ------------------------------------------------------------------

CRD = Path(__file__).resolve().parents[3] / "crds" / "modelmonitor.io_modelmonitors.yaml"


def _spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]  # type: ignore[no-any-return]


def _at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for key in path.split("."):
        node = node["items"] if key == "[]" else node["properties"][key]
    return node


DURATION_PAIRS = [
    ("data.probe", "timeout", "timeoutSeconds"),
    ("data.payloadLog", "window", "windowSeconds"),
    ("prometheus", "timeout", "timeoutSeconds"),
    ("actions", "cooldown", "cooldownSeconds"),
    ("actions.scale", "stabilizationWindow", "stabilizationSeconds"),
    ("slos.[].latency", "threshold", "thresholdMs"),
]


@pytest.mark.parametrize(("parent", "new", "old"), DURATION_PAIRS)
def test_crd_duration_pairs(parent: str, new: str, old: str) -> None:
    node = _at(_spec_schema(), parent)
    new_schema, old_schema = node["properties"][new], node["properties"][old]
    assert new_schema["type"] == "string"
    assert new_schema["pattern"].startswith("^(")
    assert "default" not in new_schema, "a default would collide with the old field"
    assert "default" not in old_schema, "a default would collide with the new field"
    assert old_schema["description"].startswith("Deprecated")
    rules = " ".join(r["rule"] for r in node.get("x-kubernetes-validations", []))
    assert f"has(self.{new})" in rules
    assert f"has(self.{old})" in rules


def test_reference_is_optional_in_the_crd_with_rules_naming_what_needs_it() -> None:
    spec = _spec_schema()
    assert "reference" not in spec["required"]
    messages = [r["message"] for r in spec["x-kubernetes-validations"]]
    needs = [m for m in messages if m.startswith("spec.reference is required: ")]
    with pytest.raises(SpecError) as info:
        parse_spec(
            {
                "target": TARGET,
                "data": {
                    "payloadLog": {},
                    "probe": {},
                    "partitions": {"claimName": "c", "path": "d"},
                },
                "performance": {"probabilities": ["p"], "target": "y"},
            }
        )
    parser = [
        f"{path} {message}" for path, message in info.value.problems if path == "spec.reference"
    ]
    assert len(needs) == 5
    assert sorted(parser) == sorted(needs)  # the same rules, in the same words
