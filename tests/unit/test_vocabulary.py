"""One vocabulary each: every enum of the CRD equals the Python that implements it.

Drift methods come from the statistics registry, protocols from the codecs, corrections
from the correction module, phases from the status machine; the spec parser accepts
exactly those, and the CRD (crds/, the source the chart and manifests/ copy) must list
exactly the same values, so adding a method or a protocol without its CRD enum (or the
other way round) fails here. Defaults are held the same way by
tests/unit/operator/test_spec.py::test_python_defaults_equal_crd_defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmonitor.adapters.files import FORMAT_NAMES
from modelmonitor.core import spec
from modelmonitor.core.anomaly.outcome import ANOMALY_STATES
from modelmonitor.core.codecs.inference import PROTOCOLS
from modelmonitor.core.gitops import GITOPS_POLICIES
from modelmonitor.core.stats.correction import CORRECTIONS
from modelmonitor.core.stats.methods import METHOD_NAMES
from modelmonitor.core.status import Phase
from modelmonitor.sources.sli_templates import TEMPLATES

CRD = Path(__file__).resolve().parents[2] / "crds" / "modelmonitor.io_modelmonitors.yaml"


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _enums(schema: dict[str, Any], path: str = "") -> dict[str, list[Any]]:
    """Every ``enum`` of the schema by dotted path (``[]`` for list items)."""
    found: dict[str, list[Any]] = {}
    if "enum" in schema:
        found[path] = schema["enum"]
    for name, sub in (schema.get("properties") or {}).items():
        found.update(_enums(sub, f"{path}.{name}" if path else name))
    if "items" in schema:
        found.update(_enums(schema["items"], f"{path}[]"))
    return found


ENUMS = _enums(_schema())

# Each CRD enum and the Python values it must equal (order included: the CRD lists them
# in the order users read them in `kubectl explain` and the docs).
EXPECTED: dict[str, tuple[Any, ...]] = {
    "spec.target.kind": spec.TARGET_KINDS,
    "spec.target.endpoint.protocol": PROTOCOLS,
    "spec.schedule.mode": spec.SCHEDULE_MODES,
    "spec.reference.format": spec.REFERENCE_FORMATS,
    "spec.features[].type": spec.FEATURE_TYPES,
    "spec.features[].method": METHOD_NAMES,
    "spec.prediction.type": spec.FEATURE_TYPES,
    "spec.data.probe.dataset.format": tuple(f for f in spec.REFERENCE_FORMATS if f != "profile"),
    "spec.drift.method": METHOD_NAMES,
    "spec.drift.correction": CORRECTIONS,
    "spec.slos[].source": spec.SLO_SOURCES,
    "spec.slos[].template.name": spec.SLI_TEMPLATE_NAMES,
    "spec.actions.onSLOBreach[]": spec.ACTIONS,
    "spec.actions.onDrift[]": spec.ACTIONS,
    "spec.actions.onPerformanceDrop[]": spec.ACTIONS,
    "spec.performance.task": spec.PERFORMANCE_TASKS,
    "spec.performance.metrics[]": spec.PERFORMANCE_METRICS,
    "spec.performance.labels.source": spec.LABEL_SOURCES,
    "spec.actions.notify.format": spec.NOTIFY_FORMATS,
    "spec.actions.gitops": GITOPS_POLICIES,
    "spec.alerting.sinks[].type": spec.SINK_TYPES,
    "spec.alerting.sinks[].minSeverity": spec.SEVERITIES,
    "spec.anomalies[].sli": spec.ANOMALY_SLIS,
    "spec.anomalies[].template.name": spec.SLI_TEMPLATE_NAMES,
    "spec.data.payloadLog.kafka.sasl.mechanism": spec.KAFKA_SASL_MECHANISMS,
    "status.anomalies[].state": ANOMALY_STATES,
    "status.phase": tuple(p.value for p in Phase),
    "status.conditions[].status": ("True", "False", "Unknown"),
}


def test_every_crd_enum_is_checked() -> None:
    assert set(ENUMS) == set(EXPECTED)


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_crd_enum_equals_python(path: str) -> None:
    assert set(ENUMS[path]) == set(EXPECTED[path]), path
    assert len(ENUMS[path]) == len(set(ENUMS[path])), f"{path} lists a value twice"


def test_every_sli_template_name_has_a_template() -> None:
    assert set(spec.SLI_TEMPLATE_NAMES) == set(TEMPLATES)


def test_every_reference_format_has_a_reader() -> None:
    readable = {"auto", "profile"} | set(FORMAT_NAMES)
    assert set(spec.REFERENCE_FORMATS) <= readable


def test_the_parser_refuses_what_the_vocabulary_lacks() -> None:
    base = {"target": {"name": "m"}, "reference": {"inline": [{"a": 1}]}}
    with pytest.raises(spec.SpecError, match=r"spec\.drift\.method"):
        spec.parse_spec({**base, "drift": {"method": "no-such-method"}})
    for name in METHOD_NAMES:
        parsed = spec.parse_spec({**base, "drift": {"method": name}})
        assert parsed.drift.method == name
