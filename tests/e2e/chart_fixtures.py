"""What the chart's e2e tests share: its paths and the cluster with its CRDs applied."""

from __future__ import annotations

import uuid
from functools import cache
from pathlib import Path
from typing import Any

import yaml

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

# The harness's pods and Prometheus listen on 127.x, which the operator refuses unless
# its allowlist opens it: installs whose operator runs monitors here set this.
ALLOW_LOOPBACK = "--set=outbound.allowCIDRs={127.0.0.0/8}"


def with_chart_crds(kube_cluster: KubeCluster) -> KubeCluster:
    """The cluster with the chart's CRDs applied for real and established.

    They stay after the tests: other tests of the session rely on them too.
    """
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    kube_cluster.wait_established(*CRDS)
    return kube_cluster


def release_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@cache
def server_version(cluster: KubeCluster) -> str:
    out = cluster.kubectl("version", "-o", "json").stdout
    return str(yaml.safe_load(out)["serverVersion"]["gitVersion"])


def helm_template(
    cluster: KubeCluster, namespace: str, *sets: str, release: str = "mm"
) -> list[Doc]:
    """``helm template`` for the cluster's Kubernetes version (the chart sets kubeVersion)."""
    args = [f"--set={s}" for s in sets]
    version = f"--kube-version={server_version(cluster)}"
    out = cluster.helm("template", release, str(CHART), "-n", namespace, version, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def can_i(cluster: KubeCluster, sa: str, verb: str, resource: str, *where: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", verb, resource, f"--as={sa}", *where, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stderr
    return answer == "yes"


def sa_kubeconfig(cluster: KubeCluster, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a short-lived token)."""
    token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=1h").stdout
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    entry = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "target", "cluster": entry["cluster"]}],
        "users": [{"name": sa, "user": {"token": token.strip()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "target", "user": sa}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path
