"""The spec's ergonomics against the real API server, and the parser agreeing with it.

An optional reference (required, with a message naming what needs it, exactly where a
check does), probeErrors, and duration strings beside the deprecated numeric fields:
both forms together are refused, except the value older CRDs stored as the default.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelmonitor.core.spec import SpecError, parse_spec
from tests.cluster.kube import KubeCluster
from tests.e2e.test_crd import BASE, _monitor, assert_refused, spec_with

PROBE_SET = {"inline": [{"amount": 1.0}]}
NO_REFERENCE = spec_with("reference", None)
PROM_SLO = {
    "name": "avail",
    "source": "prometheus",
    "errorRatio": {"errors": "sum(rate(e[$window]))", "total": "sum(rate(t[$window]))"},
}

# (case, spec, the field path the API server's message must name, words it must hold)
REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    ("probe without set or reference", NO_REFERENCE, "spec.reference", "sends a sample"),
    (
        "probe set with drift on, no reference",
        spec_with("data.probe.dataset", PROBE_SET, NO_REFERENCE),
        "spec.reference",
        "drift detection and data quality",
    ),
    (
        "payload log without reference",
        spec_with("data", {"payloadLog": {}}, spec_with("drift", {"enabled": False}, NO_REFERENCE)),
        "spec.reference",
        "payloadLog",
    ),
    (
        "timeout and timeoutSeconds",
        spec_with("data.probe", {"timeout": "3s", "timeoutSeconds": 3}),
        "timeoutSeconds",
        "not both",
    ),
    (
        "cooldown and cooldownSeconds",
        spec_with("actions", {"cooldown": "5m", "cooldownSeconds": 300}),
        "cooldownSeconds",
        "not both",
    ),
    (
        "threshold and thresholdMs",
        spec_with("slos", [{"name": "l", "latency": {"threshold": "1s", "thresholdMs": 1000}}]),
        "spec.slos[0].latency",
        "exactly one of threshold",
    ),
    (
        "latency without threshold",
        spec_with("slos", [{"name": "l", "latency": {"percentile": 90}}]),
        "spec.slos[0].latency",
        "exactly one of threshold",
    ),
    (
        "probeErrors with errorRatio",
        spec_with("slos", [{"name": "e", "probeErrors": {}, "errorRatio": {}}]),
        "spec.slos[0]",
        "probeErrors",
    ),
    (
        "probeErrors from prometheus",
        spec_with(
            "slos",
            [{"name": "e", "source": "prometheus", "probeErrors": {}}],
            spec_with("prometheus", {"url": "http://p:9090"}),
        ),
        "spec.slos[0].probeErrors",
        "needs source probe",
    ),
    ("cooldown 8d", spec_with("actions", {"cooldown": "8d"}), "spec.actions.cooldown", "7d"),
    (
        "cooldown not a duration",
        spec_with("actions", {"cooldown": "soon"}),
        "spec.actions.cooldown",
        "",
    ),
    (
        "payload window 30s",
        spec_with("data.payloadLog", {"window": "30s"}),
        "spec.data.payloadLog.window",
        "1m",
    ),
    ("probe timeout 0s", spec_with("data.probe.timeout", "0s"), "spec.data.probe.timeout", ""),
    (
        "prometheus timeout 3m",
        spec_with("prometheus", {"url": "http://p:9090", "timeout": "3m"}),
        "spec.prometheus.timeout",
        "120s",
    ),
    (
        "stabilization 2d",
        spec_with(
            "actions",
            {"onSLOBreach": ["scale"], "scale": {"maxReplicas": 2, "stabilizationWindow": "25h"}},
        ),
        "spec.actions.scale.stabilizationWindow",
        "24h",
    ),
]

ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    (
        "prometheus SLOs only",
        {
            "target": {"name": "m"},
            "prometheus": {"url": "http://p:9090", "timeout": "10s"},
            "slos": [{**PROM_SLO, "window": "7d"}],
        },
    ),
    (
        "probe set, drift off, no reference",
        spec_with(
            "slos",
            [{"name": "e", "probeErrors": {}}, {"name": "l", "latency": {"threshold": "250ms"}}],
            spec_with(
                "data.probe.dataset",
                PROBE_SET,
                spec_with("drift", {"enabled": False}, NO_REFERENCE),
            ),
        ),
    ),
    (
        "every new duration",
        spec_with(
            "actions",
            {
                "cooldown": "7d",
                "onSLOBreach": ["scale"],
                "scale": {"maxReplicas": 2, "stabilizationWindow": "1h30m"},
            },
            spec_with("data", {"probe": {"timeout": "1.5s"}, "payloadLog": {"window": "7d"}}),
        ),
    ),
    (
        "every old numeric field",
        spec_with(
            "actions",
            {
                "cooldownSeconds": 300,
                "onSLOBreach": ["scale"],
                "scale": {"maxReplicas": 2, "stabilizationSeconds": 60},
            },
            spec_with(
                "data",
                {"probe": {"timeoutSeconds": 1.5}, "payloadLog": {"windowSeconds": 600}},
                spec_with("slos", [{"name": "l", "latency": {"thresholdMs": 250}}]),
            ),
        ),
    ),
    (
        "old defaults stored beside the new fields",
        spec_with(
            "actions",
            {"cooldown": "1m", "cooldownSeconds": 600},
            spec_with("data.probe", {"timeout": "1s", "timeoutSeconds": 2}),
        ),
    ),
    (
        "errorRatio {} for probe errors, as before",
        spec_with("slos", [{"name": "e", "errorRatio": {}}]),
    ),
]


@pytest.mark.parametrize(("case", "spec", "field", "words"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_by_the_api_server_and_the_parser(
    crds: KubeCluster, namespace: str, case: str, spec: dict[str, Any], field: str, words: str
) -> None:
    assert_refused(crds, namespace, case, spec, field)
    if words:
        proc = crds.kubectl(
            *("apply", "-n", namespace, "--dry-run=server", "-f", "-"),
            input=_monitor("bad", spec),
            check=False,
        )
        assert words in proc.stderr, proc.stderr
    with pytest.raises(SpecError):
        parse_spec(spec)


def test_accepted_by_the_api_server_and_the_parser(crds: KubeCluster, namespace: str) -> None:
    for case, spec in ACCEPTED:
        proc = crds.kubectl(
            *("apply", "-n", namespace, "--dry-run=server", "-f", "-"),
            input=_monitor("good", spec),
            check=False,
        )
        assert proc.returncode == 0, f"{case}: {proc.stderr}"
        parse_spec(spec)


def test_an_old_object_moves_to_the_new_field_without_removing_the_stored_default(
    crds: KubeCluster, namespace: str
) -> None:
    """Objects created under the old CRD hold the defaults it wrote (cooldownSeconds: 600);
    applying a manifest with the new field over them is accepted; another old value is
    refused, naming the field to remove."""
    old = spec_with("actions", {"cooldownSeconds": 600})
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=_monitor("moving", old))
    moved = copy.deepcopy(old)
    moved["actions"]["cooldown"] = "2m"
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=_monitor("moving", moved))
    stored = crds.get("mm", "moving", "-n", namespace)["spec"]["actions"]
    assert (stored["cooldown"], stored["cooldownSeconds"]) == ("2m", 600)
    assert (
        parse_spec(crds.get("mm", "moving", "-n", namespace)["spec"]).actions.cooldown_seconds
        == 120
    )
    moved["actions"]["cooldownSeconds"] = 300
    proc = crds.kubectl(
        "apply", "-n", namespace, "-f", "-", input=_monitor("moving", moved), check=False
    )
    assert proc.returncode != 0
    assert "remove cooldownSeconds" in proc.stderr, proc.stderr


def test_new_fields_carry_no_defaults(crds: KubeCluster, namespace: str) -> None:
    """Neither form is defaulted by the API server (a default would collide with the other
    form); the parser's defaults apply."""
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=_monitor("plain", BASE))
    spec = crds.get("mm", "plain", "-n", namespace)["spec"]
    assert "timeoutSeconds" not in spec["data"]["probe"]
    assert "timeout" not in spec["data"]["probe"]
    assert parse_spec(spec).probe is not None
