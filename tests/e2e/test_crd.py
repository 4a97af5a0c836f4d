"""The CRD against the real API server: examples apply, bad specs are refused by name."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import KubeCluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.yaml"))

BASE: dict[str, Any] = {
    "target": {
        "name": "fraud-model",
        "endpoint": {"service": {"name": "fraud-model", "port": 8080}},
    },
    "reference": {"configMapRef": {"name": "fraud-reference", "key": "reference.csv"}},
    "data": {"probe": {"samples": 10}},
}


def spec_with(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """BASE with ``value`` set at a dotted ``path`` (``None`` deletes the key)."""
    spec = copy.deepcopy(base if base is not None else BASE)
    node = spec
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return spec


EXTERNAL = spec_with("target", {"kind": "External", "name": "x", "endpoint": {"url": "http://x:1"}})

# (case, spec, the field path the API server's message must name)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("interval below 10s", spec_with("schedule", {"interval": "5s"}), "spec.schedule.interval"),
    (
        "interval not a duration",
        spec_with("schedule", {"interval": "soon"}),
        "spec.schedule.interval",
    ),
    ("unsupported target kind", spec_with("target.kind", "StatefulSet"), "spec.target.kind"),
    ("target name missing", spec_with("target.name", None), "spec.target.name"),
    ("target name not DNS", spec_with("target.name", "Fraud_Model"), "spec.target.name"),
    (
        "prometheus SLO without prometheus.url",
        spec_with(
            "slos",
            [
                {
                    "name": "avail",
                    "source": "prometheus",
                    "errorRatio": {"errors": "sum(rate(e[5m]))", "total": "sum(rate(t[5m]))"},
                }
            ],
        ),
        "spec.prometheus",
    ),
    ("drift share above 1", spec_with("drift", {"driftShare": 1.5}), "spec.drift.driftShare"),
    ("drift share zero", spec_with("drift", {"driftShare": 0}), "spec.drift.driftShare"),
    ("unknown drift method", spec_with("drift", {"method": "magic"}), "spec.drift.method"),
    ("unknown correction", spec_with("drift", {"correction": "holm"}), "spec.drift.correction"),
    (
        "endpoint with service and url",
        spec_with("target.endpoint.url", "http://fraud:8080"),
        "spec.target.endpoint",
    ),
    (
        "two reference sources",
        spec_with("reference.url", "http://data/ref.csv"),
        "spec.reference",
    ),
    ("no reference source", spec_with("reference", {"format": "csv"}), "spec.reference"),
    ("reference missing", spec_with("reference", None), "spec.reference"),
    (
        "rollback on an External target",
        spec_with("actions", {"onSLOBreach": ["rollback"]}, EXTERNAL),
        "spec.actions",
    ),
    (
        "scale without scale settings",
        spec_with("actions", {"onSLOBreach": ["scale"]}),
        "spec.actions.scale",
    ),
    (
        "notify without notify settings",
        spec_with("actions", {"onDrift": ["notify"]}),
        "spec.actions.notify",
    ),
    (
        "none combined with an action",
        spec_with(
            "actions",
            {
                "onDrift": ["none", "notify"],
                "notify": {"webhookSecretRef": {"name": "s", "key": "url"}},
            },
        ),
        "spec.actions.onDrift",
    ),
    ("unknown action", spec_with("actions", {"onDrift": ["reboot"]}), "spec.actions.onDrift"),
    (
        "SLO with latency and errorRatio",
        spec_with("slos", [{"name": "a", "latency": {"thresholdMs": 100}, "errorRatio": {}}]),
        "spec.slos[0]",
    ),
    (
        "latency percentile above 100",
        spec_with("slos", [{"name": "a", "latency": {"thresholdMs": 100, "percentile": 101}}]),
        "spec.slos[0].latency.percentile",
    ),
    (
        "objective of 100%",
        spec_with("slos", [{"name": "a", "objective": 100, "errorRatio": {}}]),
        "spec.slos[0].objective",
    ),
    (
        "probe SLO without a probe",
        spec_with("slos", [{"name": "a", "errorRatio": {}}], spec_with("data", None)),
        "spec.data",
    ),
    (
        "service port out of range",
        spec_with("target.endpoint.service.port", 70000),
        "spec.target.endpoint.service.port",
    ),
    (
        "unknown feature type",
        spec_with("features", [{"name": "amount", "type": "text"}]),
        "spec.features[0].type",
    ),
    (
        "duplicate feature",
        spec_with("features", [{"name": "a"}, {"name": "a"}]),
        "spec.features[1]",
    ),
    (
        "prometheus url not http",
        spec_with("prometheus", {"url": "ftp://prom:9090"}),
        "spec.prometheus.url",
    ),
    (
        "pvc reference in inline mode",
        spec_with("reference", {"pvc": {"claimName": "data", "path": "/ref.parquet"}}),
        "spec.reference.pvc",
    ),
    (
        "partitioned window in inline mode",
        spec_with("data.partitions", {"claimName": "data", "path": "day/*.parquet"}),
        "spec.data.partitions",
    ),
    (
        "partitioned window climbing out of its claim",
        spec_with(
            "data.partitions",
            {"claimName": "data", "path": "../../var/run/secrets"},
            spec_with("schedule", {"interval": "60s", "mode": "job"}),
        ),
        "spec.data.partitions.path",
    ),
    (
        "negative cooldown",
        spec_with("actions", {"cooldownSeconds": -1}),
        "spec.actions.cooldownSeconds",
    ),
    ("zero probe samples", spec_with("data.probe.samples", 0), "spec.data.probe.samples"),
    (
        "scale to zero replicas",
        spec_with("actions", {"onSLOBreach": ["scale"], "scale": {"maxReplicas": 0}}),
        "spec.actions.scale.maxReplicas",
    ),
    (
        "External target without url",
        spec_with(
            "target",
            {"kind": "External", "name": "x", "endpoint": {"service": {"name": "x", "port": 80}}},
        ),
        "spec.target.endpoint",
    ),
    (
        "payload log in job mode",
        spec_with("schedule", {"interval": "60s", "mode": "job"}, spec_with("data.payloadLog", {})),
        "spec.data.payloadLog",
    ),
    (
        "probe set with two sources",
        spec_with("data.probe.dataset", {"url": "http://data/golden.csv", "inline": [{"a": 1}]}),
        "spec.data.probe.dataset",
    ),
    (
        "payload window minSamples above maxSamples",
        spec_with("data.payloadLog", {"minSamples": 100, "maxSamples": 10}),
        "spec.data.payloadLog.minSamples",
    ),
]

NOTIFY = spec_with(
    "actions",
    {"onDrift": ["notify"], "notify": {"webhookSecretRef": {"name": "webhook", "key": "url"}}},
)
PROBE_SET = spec_with("data.probe.dataset", {"configMapRef": {"name": "golden", "key": "g.csv"}})
PVC = spec_with(
    "reference",
    {"pvc": {"claimName": "data", "path": "/ref.parquet"}},
    spec_with("schedule", {"interval": "60s", "mode": "job"}),
)
ESCAPE = "../../kube-system/configmaps/private-config"

# Names that would lead the operator out of the monitor's namespace: (field, spec).
TRAVERSALS: list[tuple[str, dict[str, Any]]] = [
    ("spec.reference.configMapRef.name", spec_with("reference.configMapRef.name", ESCAPE)),
    ("spec.reference.configMapRef.name", spec_with("reference.configMapRef.name", "a%2Fb")),
    ("spec.reference.configMapRef.name", spec_with("reference.configMapRef.name", "Private")),
    ("spec.reference.configMapRef.name", spec_with("reference.configMapRef.name", "a" * 254)),
    ("spec.reference.configMapRef.key", spec_with("reference.configMapRef.key", "..")),
    ("spec.reference.configMapRef.key", spec_with("reference.configMapRef.key", "../x.csv")),
    (
        "spec.data.probe.dataset.configMapRef.name",
        spec_with("data.probe.dataset.configMapRef.name", ESCAPE, PROBE_SET),
    ),
    (
        "spec.data.probe.dataset.configMapRef.key",
        spec_with("data.probe.dataset.configMapRef.key", "..data", PROBE_SET),
    ),
    (
        "spec.actions.notify.webhookSecretRef.name",
        spec_with("actions.notify.webhookSecretRef.name", "../../kube-system/secrets/x", NOTIFY),
    ),
    (
        "spec.actions.notify.webhookSecretRef.key",
        spec_with("actions.notify.webhookSecretRef.key", "a/url", NOTIFY),
    ),
    ("spec.reference.pvc.claimName", spec_with("reference.pvc.claimName", "../data", PVC)),
    (
        "spec.data.partitions.claimName",
        spec_with(
            "data.partitions",
            {"claimName": "../data", "path": "day"},
            spec_with("schedule", {"interval": "60s", "mode": "job"}),
        ),
    ),
    ("spec.target.name", spec_with("target.name", "../../kube-system/deployments/coredns")),
    ("spec.target.name", spec_with("target.name", "a..b")),
    (
        "spec.target.endpoint.service.name",
        spec_with("target.endpoint.service.name", "kube-dns.kube-system"),
    ),
]


def _monitor(name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "modelmonitor.io/v1alpha1",
            "kind": "ModelMonitor",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_apply(crds: KubeCluster, namespace: str, example: Path) -> None:
    crds.kubectl("apply", "-n", namespace, "-f", str(example))
    name = yaml.safe_load(example.read_text())["metadata"]["name"]
    stored = crds.get("mm", name, "-n", namespace)
    # Defaults from the schema are filled in by the API server.
    assert stored["spec"]["schedule"]["interval"]
    assert stored["spec"]["drift"]["method"]


def test_at_least_fifteen_invalid_cases() -> None:
    assert len(INVALID) >= 15


@pytest.mark.parametrize(("case", "spec", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_spec_is_refused_naming_the_field(
    crds: KubeCluster,
    namespace: str,
    case: str,
    spec: dict[str, Any],
    field: str,
) -> None:
    assert_refused(crds, namespace, case, spec, field)


def assert_refused(
    crds: KubeCluster, namespace: str, case: str, spec: dict[str, Any], field: str
) -> None:
    """The API server refuses ``spec`` (a server-side dry run), naming ``field``."""
    proc = crds.kubectl(
        "apply",
        "-n",
        namespace,
        "--dry-run=server",
        "-f",
        "-",
        input=_monitor("bad", spec),
        check=False,
    )
    assert proc.returncode != 0, f"{case}: the API server accepted it"
    assert field in proc.stderr, f"{case}: message does not name {field}: {proc.stderr}"


@pytest.mark.parametrize(
    ("field", "spec"), TRAVERSALS, ids=[f"{f[0]}-{i}" for i, f in enumerate(TRAVERSALS)]
)
def test_name_leaving_the_namespace_is_refused_naming_the_field(
    crds: KubeCluster, namespace: str, field: str, spec: dict[str, Any]
) -> None:
    assert_refused(crds, namespace, field, spec, field)


def test_names_at_their_limits_are_accepted(crds: KubeCluster, namespace: str) -> None:
    """The bases of the table above are valid, and so are names at the edge of each rule."""
    edges = [
        NOTIFY,
        PROBE_SET,
        PVC,
        spec_with("reference.configMapRef", {"name": "a" * 253, "key": ".hidden..csv"}),
        spec_with("actions.notify.webhookSecretRef", {"name": "a.b-c", "key": "U_r-l"}, NOTIFY),
        spec_with(
            "target", {"name": "a" * 253, "endpoint": {"service": {"name": "s" * 63, "port": 80}}}
        ),
    ]
    for spec in edges:
        crds.kubectl(
            "apply", "-n", namespace, "--dry-run=server", "-f", "-", input=_monitor("good", spec)
        )


def test_base_spec_is_valid(crds: KubeCluster, namespace: str) -> None:
    """Guards the table: every refusal above comes from its one change, not from BASE."""
    crds.kubectl(
        "apply", "-n", namespace, "--dry-run=server", "-f", "-", input=_monitor("good", BASE)
    )


def test_printer_columns_and_short_name(crds: KubeCluster, namespace: str) -> None:
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=_monitor("cols", BASE))
    header = crds.kubectl("get", "mm", "-n", namespace).stdout.splitlines()[0].split()
    assert header == [
        *["NAME", "TARGET", "PHASE", "DRIFT", "SLO", "INCIDENT"],
        *["LAST", "ACTION", "LAST", "RUN", "AGE"],
    ]
