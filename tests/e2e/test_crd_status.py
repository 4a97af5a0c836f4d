"""The CRD against the real API server: kubectl explain describes fields, status survives.

The status schema is structural, so the API server prunes whatever it does not list:
every status the operator's code writes (tests/unit/status_samples.py) is written
through the status subresource and read back unchanged.
"""

from __future__ import annotations

import json
import re

import yaml

from modelmonitor.core.status import replacing
from tests.cluster.kube import KubeCluster, wait_for
from tests.unit.status_samples import every_status, without_nulls

MONITOR = {
    "apiVersion": "modelmonitor.io/v1alpha1",
    "kind": "ModelMonitor",
    "metadata": {"name": "status-shapes"},
    "spec": {
        "target": {"name": "fraud-model"},
        "reference": {"configMapRef": {"name": "fraud-reference", "key": "reference.csv"}},
    },
}


def explain(crds: KubeCluster, field: str) -> str:
    """``kubectl explain`` once the API server publishes the CRD's OpenAPI (a few seconds)."""
    return wait_for(
        lambda: crds.kubectl("explain", field, check=False).stdout or None,
        timeout=30,
        what=f"kubectl explain {field}",
    )


def test_explain_prints_the_descriptions(crds: KubeCluster) -> None:
    on_breach = explain(crds, "modelmonitors.spec.actions.onSLOBreach")
    assert "Actions when an SLO breach is confirmed" in on_breach
    threshold = " ".join(explain(crds, "modelmonitors.spec.slos.latency.thresholdMs").split())
    assert "Latency limit in milliseconds" in threshold
    incident = explain(crds, "modelmonitors.status.incident")
    for field in ("pending", "acted", "lastActionAt", "recentActions", "restore"):
        assert re.search(rf"^\s+{field}\s+<", incident, re.MULTILINE), field
    pending = " ".join(explain(crds, "modelmonitors.status.incident.pending.id").split())
    assert "deterministic id" in pending


def differences(sent: object, stored: object, path: str = "status") -> list[str]:
    """Where ``stored`` is not ``sent``: a path and both values."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        return [
            d
            for key in sent.keys() | stored.keys()
            for d in differences(sent.get(key, "<absent>"), stored.get(key, "<absent>"),
                                 f"{path}.{key}")
        ]  # fmt: skip
    if isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        return [
            d
            for i, (a, b) in enumerate(zip(sent, stored, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    return [] if sent == stored else [f"{path}: sent {sent!r}, stored {stored!r}"]


def test_every_status_the_operator_writes_is_kept_whole(crds: KubeCluster, namespace: str) -> None:
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(MONITOR))
    name = MONITOR["metadata"]["name"]  # type: ignore[index]
    old: dict[str, object] = {}
    lost: list[str] = []
    for what, status in every_status():
        patch = json.dumps({"status": replacing(old, status)})
        crds.kubectl(
            "patch", "mm", name, "-n", namespace, "--subresource=status", "--type=merge",
            "-p", patch,
        )  # fmt: skip
        stored = crds.get("mm", name, "-n", namespace).get("status") or {}
        lost.extend(
            f"{what}: {d}"
            for d in differences(without_nulls(json.loads(json.dumps(status))), stored)
        )
        old = stored
    assert lost == []
