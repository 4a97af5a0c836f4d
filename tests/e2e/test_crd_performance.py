"""spec.performance and onPerformanceDrop against the API server: the CRD's schema and CEL
refuse what the parser refuses, naming the field; a full section is accepted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.kube import KubeCluster
from tests.e2e.test_crd import _monitor, assert_refused, spec_with

PERF: dict[str, Any] = {"target": "label", "probabilities": ["p0", "p1"]}


def perf(**extra: Any) -> dict[str, Any]:
    return spec_with("performance", {**PERF, **extra})


def logged(**extra: Any) -> dict[str, Any]:
    """spec.performance with a payload log (what late labels join)."""
    return spec_with("data.payloadLog", {"window": "1h"}, perf(**extra))


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("no probabilities", spec_with("performance", {"target": "y"}), "probabilities"),
    ("target among the probabilities", perf(target="p1"), "spec.performance.target"),
    ("regression", perf(task="regression"), "spec.performance.task"),
    ("a floor above 1", perf(minimum={"accuracy": 1.5}), "spec.performance.minimum"),
    ("an unknown metric key", perf(minimum={"mae": 0.1}), "spec.performance.minimum"),
    (
        "a drop for a metric not reported",
        perf(metrics=["f1"], maxDrop={"accuracy": 0.1}),
        "spec.performance.maxDrop",
    ),
    ("an output name with a space", perf(probabilityOutput="a b"), "probabilityOutput"),
    (
        "without a target or label column",
        spec_with("performance", {"probabilities": ["p"]}),
        "spec.performance",
    ),
    ("without the probe", spec_with("data", None, perf()), "spec.performance"),
    (
        "onPerformanceDrop without a floor",
        spec_with(
            "actions",
            {
                "onPerformanceDrop": ["retrain"],
                "retrain": {"jobTemplate": {"template": {"spec": {}}}},
            },
            perf(),
        ),
        "spec.actions",
    ),
    ("late labels without the payload log", perf(labels={}), "spec.performance.labels"),
    (
        "a label delay above 30d",
        logged(labels={"labelDelay": "31d"}),
        "spec.performance.labels.labelDelay",
    ),
    (
        "a configMap label feed without its ref",
        logged(labels={"source": "configMap"}),
        "spec.performance.labels.configMapRef",
    ),
    (
        "a ConfigMap ref with the http feed",
        logged(labels={"configMapRef": {"name": "l", "key": "labels.csv"}}),
        "spec.performance.labels.configMapRef",
    ),
]


@pytest.mark.parametrize(("case", "spec", "field"), REFUSED, ids=[c[0] for c in REFUSED])
def test_bad_performance_is_refused(
    crds: KubeCluster, namespace: str, case: str, spec: dict[str, Any], field: str
) -> None:
    assert_refused(crds, namespace, case, spec, field)


def test_a_full_performance_section_is_accepted(crds: KubeCluster, namespace: str) -> None:
    spec = spec_with(
        "actions",
        {"dryRun": True, "onPerformanceDrop": ["none"]},
        perf(
            metrics=["accuracy", "f1"],
            minimum={"accuracy": 0.9},
            maxDrop={"f1": 0.05},
            probabilityOutput="predict_proba",
            confidence=0.9,
            minRows=50,
        ),
    )
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=_monitor("perf", spec))
    stored = crds.get("mm", "perf", "-n", namespace)["spec"]["performance"]
    assert stored["task"] == "classification"
    assert stored["predictionOutput"] == "predict"
    assert stored["maxDrop"] == {"f1": 0.05}


def test_late_labels_are_accepted_with_their_defaults(crds: KubeCluster, namespace: str) -> None:
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=_monitor("late", logged(labels={})))
    stored = crds.get("mm", "late", "-n", namespace)["spec"]["performance"]["labels"]
    assert stored == {"source": "http", "labelDelay": "1d", "maxPredictions": 100000}
