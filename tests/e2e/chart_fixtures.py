"""What the chart's e2e tests share: its paths and the cluster with its CRDs applied."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.cluster.kube import KubeCluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelmonitor"
MANIFESTS = ROOT / "manifests"
CRDS = (
    "modelmonitors.modelmonitor.io",
    "kopfpeerings.kopf.dev",
    "clusterkopfpeerings.kopf.dev",
)

Doc = dict[str, Any]


def with_chart_crds(kube_cluster: KubeCluster) -> KubeCluster:
    """The cluster with the chart's CRDs applied for real and established.

    They stay after the tests: other tests of the session rely on them too.
    """
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    kube_cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *(f"crd/{name}" for name in CRDS),
    )
    return kube_cluster


def release_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
