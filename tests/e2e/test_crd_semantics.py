"""Specs the schema used to accept but that meant something else, against the API server.

Thresholds off their method's scale (5 meant as 5%), a feature named like the prediction
column, and request-path pieces that leave the inference route: each is refused by the
CRD naming the field; the values next to each edge are accepted.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.kube import KubeCluster
from tests.e2e.test_crd import _monitor, assert_refused, spec_with

FEATURES = [{"name": "amount", "type": "numerical"}]

# (case, spec, the field path the API server's message must name)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    (
        "ks threshold 5 (meant 5%)",
        spec_with("drift", {"method": "ks", "threshold": 5}),
        "spec.drift.threshold",
    ),
    (
        "chi2 threshold 1",
        spec_with("drift", {"method": "chi2", "threshold": 1}),
        "spec.drift.threshold",
    ),
    ("auto threshold above 1", spec_with("drift", {"threshold": 1.5}), "spec.drift.threshold"),
    (
        "js threshold above 1",
        spec_with("drift", {"method": "jensenshannon", "threshold": 2}),
        "spec.drift.threshold",
    ),
    (
        "psi threshold 25 (meant 0.25)",
        spec_with("drift", {"method": "psi", "threshold": 25}),
        "spec.drift.threshold",
    ),
    (
        "feature threshold off its method",
        spec_with("features", [{"name": "amount", "method": "ks", "threshold": 5}]),
        "spec.features[0].threshold",
    ),
    (
        "feature threshold off drift.method",
        spec_with("features", [{"name": "amount", "threshold": 2}]),
        "spec.features",
    ),
    ("feature named prediction", spec_with("features", [{"name": "prediction"}]), "spec.features"),
    (
        "feature named like spec.prediction.name",
        spec_with("prediction", {"name": "amount"}, spec_with("features", FEATURES)),
        "spec.features",
    ),
    ("model ..", spec_with("target.endpoint.model", ".."), "spec.target.endpoint.model"),
    ("model with /", spec_with("target.endpoint.model", "../admin"), "spec.target.endpoint.model"),
    ("model with %", spec_with("target.endpoint.model", "%2e%2e"), "spec.target.endpoint.model"),
    ("path with ..", spec_with("target.endpoint.path", "/a/../admin"), "spec.target.endpoint.path"),
    ("path ending in .", spec_with("target.endpoint.path", "/a/."), "spec.target.endpoint.path"),
    ("path with a query", spec_with("target.endpoint.path", "/p?x=1"), "spec.target.endpoint.path"),
]

# Mode dask with an ephemeral cluster (a DaskJob per run) over a claim's partitions.
DASK = spec_with(
    "data.partitions",
    {"claimName": "exports", "path": "day"},
    spec_with("schedule", {"mode": "dask", "dask": {"cluster": {}}}),
)
REFUSED += [
    (
        "dask scheduler and cluster both",
        spec_with("schedule.dask.scheduler", "tcp://d:8786", DASK),
        "spec.schedule.dask",
    ),
    (
        "dask neither scheduler nor cluster",
        spec_with("schedule.dask", {}, DASK),
        "spec.schedule.dask",
    ),
    (
        "dask cluster of 0 workers",
        spec_with("schedule.dask.cluster.workers", 0, DASK),
        "spec.schedule.dask.cluster.workers",
    ),
    (
        "dask cluster of 33 workers",
        spec_with("schedule.dask.cluster.workers", 33, DASK),
        "spec.schedule.dask.cluster.workers",
    ),
]

ACCEPTED: list[dict[str, Any]] = [
    DASK,
    spec_with(
        "schedule.dask.cluster", {"workers": 32, "resources": {"limits": {"memory": "1Gi"}}}, DASK
    ),
    spec_with("schedule.dask", {"scheduler": "tcp://dask-scheduler.data:8786"}, DASK),
    spec_with("drift", {"method": "ks", "threshold": 0.999}),
    spec_with("drift", {"threshold": None}),
    spec_with("drift", {"method": "wasserstein", "threshold": 10}),
    spec_with("drift", {"method": "hellinger", "threshold": 1}),
    spec_with(
        "features",
        [{"name": "amount", "method": "psi", "threshold": 5}, {"name": "age", "threshold": 0.3}],
        spec_with("drift", {"method": "ks", "threshold": 0.01}),
    ),
    spec_with("prediction", {"name": "score"}, spec_with("features", [{"name": "prediction"}])),
    spec_with("target.endpoint.model", "fraud.v2..b"),
    spec_with("target.endpoint.path", "/v1/models/fraud:predict"),
]


@pytest.mark.parametrize(("case", "spec", "field"), REFUSED, ids=[c[0] for c in REFUSED])
def test_spec_meaning_something_else_is_refused(
    crds: KubeCluster, namespace: str, case: str, spec: dict[str, Any], field: str
) -> None:
    assert_refused(crds, namespace, case, spec, field)


def test_values_at_each_edge_are_accepted(crds: KubeCluster, namespace: str) -> None:
    for spec in ACCEPTED:
        crds.kubectl(
            "apply", "-n", namespace, "--dry-run=server", "-f", "-", input=_monitor("good", spec)
        )
