"""The Helm chart and the plain manifests against a real API server.

``helm lint`` and ``helm template`` check the chart itself; the rendered objects (both
scopes) and manifests/ then go to the API server with a server-side dry run, which runs
its validation, defaulting and admission (Pod Security included). ``helm install``
really creates the objects: the ReplicaSet controller turns the Deployment into a pod
(which stays Pending without a node), and ``kubectl auth can-i`` asks the API server's
RBAC what the operator's ServiceAccount may do. ``helm uninstall`` removes it all again.

Where the harness acts as a node (``node_agent``), the installed chart's pod really runs:
its probes pass and it reconciles a monitor. The other tests run ``modelmonitor run``
as a local process in the pod's place: with the Deployment's environment and a token of the
installed ServiceAccount, i.e. with exactly the permissions the install grants, and
(where unshare(1) allows) with a read-only root filesystem and a fresh /tmp, like the pod.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import CommandError, KubeCluster, wait_for
from tests.cluster.node import NodeAgent
from tests.e2e.conftest_node import modelmonitor_image
from tests.e2e.operator_fixtures import free_port
from tests.e2e.test_operator import model_objects, monitor, wait_ready
from tests.unit.test_packaging import (
    ACTION_GRANTS,
    CLUSTER_ONLY_GRANTS,
    JOB_RUN_GRANTS,
    MONITORING_GRANTS,
    assert_restricted_pod,
    by_kind,
    env_of,
    grants,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelmonitor"
MANIFESTS = ROOT / "manifests"
CRDS = (
    "modelmonitors.modelmonitor.io",
    "kopfpeerings.kopf.dev",
    "clusterkopfpeerings.kopf.dev",
)
RESTRICTED_WARNING = "would violate PodSecurity"

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(kube_cluster: KubeCluster) -> KubeCluster:
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


def _release(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@cache
def _server_version(cluster: KubeCluster) -> str:
    out = cluster.kubectl("version", "-o", "json").stdout
    return str(yaml.safe_load(out)["serverVersion"]["gitVersion"])


def _template(cluster: KubeCluster, namespace: str, *sets: str, release: str = "mm") -> list[Doc]:
    """``helm template`` for the cluster's Kubernetes version (the chart sets kubeVersion)."""
    args = [f"--set={s}" for s in sets]
    version = f"--kube-version={_server_version(cluster)}"
    out = cluster.helm("template", release, str(CHART), "-n", namespace, version, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _restricted(cluster: KubeCluster, namespace: str, mode: str) -> None:
    cluster.kubectl(
        "label", "namespace", namespace, f"pod-security.kubernetes.io/{mode}=restricted"
    )


def _dry_run(cluster: KubeCluster, docs: list[Doc] | str, *extra: str) -> str:
    """Server-side dry run of ``docs``; returns kubectl's stderr (warnings)."""
    text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs)
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", *extra, input=text)
    return proc.stderr


def _can_i(cluster: KubeCluster, sa: str, verb: str, resource: str, *where: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", verb, resource, f"--as={sa}", *where, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stderr
    return answer == "yes"


# -- chart: lint and render -----------------------------------------------------------------
def test_helm_lint_passes(cluster: KubeCluster) -> None:
    cluster.helm("lint", "--strict", str(CHART))
    cluster.helm(
        "lint",
        "--strict",
        str(CHART),
        "--set=scope=namespace",
        "--set=watchNamespaces={ml,ml-staging}",
        "--set=replicas=2",
        "--set=serviceMonitor.enabled=true",
    )


def test_chart_renders_a_restricted_pod_wired_to_the_settings(cluster: KubeCluster) -> None:
    docs = _template(cluster, "ops", "logFormat=text", "logLevel=DEBUG", "metrics.port=9100")
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert_restricted_pod(pod)
    env = env_of(pod["containers"][0])
    assert env["WATCH_NAMESPACES"] == "*"
    assert env["LOG_FORMAT"] == "text"
    assert env["LOG_LEVEL"] == "DEBUG"
    assert env["METRICS_PORT"] == "9100"
    assert env["PEERING_NAME"] == "modelmonitor"
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    assert set(services) == {"mm-modelmonitor-metrics", "mm-modelmonitor-payload"}
    for name, service in services.items():
        assert service["spec"]["ports"][0]["targetPort"] == name.rsplit("-", 1)[1]
        selector = service["spec"]["selector"]
        assert selector.items() <= deployment["spec"]["selector"]["matchLabels"].items()
    assert env["PAYLOAD_PORT"] == "8082"
    assert not by_kind(docs, "ServiceMonitor")
    assert not by_kind(docs, "PodDisruptionBudget")
    assert [d["metadata"]["name"] for d in by_kind(docs, "ClusterKopfPeering")] == ["modelmonitor"]


def test_chart_cluster_scope_grants_what_the_manifests_grant(cluster: KubeCluster) -> None:
    docs = _template(cluster, "ops")
    roles = {d["metadata"]["name"]: d for d in by_kind(docs, "ClusterRole")}
    assert grants(roles["mm-modelmonitor"]) == MONITORING_GRANTS | CLUSTER_ONLY_GRANTS
    default_actions = {"rollback", "scale", "notify", "kserve"}
    assert grants(roles["mm-modelmonitor-actions"]) == set().union(
        *(ACTION_GRANTS[a] for a in default_actions)
    )
    assert not by_kind(docs, "Role")


def test_chart_action_toggles(cluster: KubeCluster) -> None:
    off = [f"rbac.actions.{a}=false" for a in ACTION_GRANTS]
    docs = _template(cluster, "ops", *off)
    assert [d["metadata"]["name"] for d in by_kind(docs, "ClusterRole")] == ["mm-modelmonitor"]
    assert len(by_kind(docs, "ClusterRoleBinding")) == 1
    for action, expected in ACTION_GRANTS.items():
        only = [s for s in off if not s.startswith(f"rbac.actions.{action}=")]
        docs = _template(cluster, "ops", *only, f"rbac.actions.{action}=true")
        roles = {d["metadata"]["name"]: d for d in by_kind(docs, "ClusterRole")}
        assert grants(roles["mm-modelmonitor-actions"]) == expected, action


def test_chart_namespace_scope_has_roles_per_namespace_and_nothing_cluster_wide(
    cluster: KubeCluster,
) -> None:
    docs = _template(cluster, "ops", "scope=namespace", "watchNamespaces={ml,ml-staging}")
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    for kind in ("Role", "RoleBinding", "KopfPeering"):
        namespaces = sorted(d["metadata"]["namespace"] for d in by_kind(docs, kind))
        expected = ["ml", "ml-staging"] * (2 if kind.startswith("Role") else 1)
        assert namespaces == sorted(expected), kind
    for role in by_kind(docs, "Role"):
        if not role["metadata"]["name"].endswith("-actions"):
            assert grants(role) == MONITORING_GRANTS
    for binding in by_kind(docs, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == "ops"
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["WATCH_NAMESPACES"] == "ml,ml-staging"
    assert env["SCOPE"] == "namespace"


def _run_accounts(docs: list[Doc]) -> list[Doc]:
    """ServiceAccounts outside the release namespace ("ops"): those of job-mode runs."""
    return [d for d in by_kind(docs, "ServiceAccount") if d["metadata"]["namespace"] != "ops"]


def test_chart_job_mode_gives_runs_their_service_account(cluster: KubeCluster) -> None:
    off = _template(cluster, "ops", "scope=namespace", "watchNamespaces={ml,ml-staging}")
    assert len(by_kind(off, "ServiceAccount")) == 1  # the operator's only
    docs = _template(
        cluster, "ops", "scope=namespace", "watchNamespaces={ml,ml-staging}", "jobMode.enabled=true"
    )
    run_accounts = _run_accounts(docs)
    assert sorted(d["metadata"]["namespace"] for d in run_accounts) == ["ml", "ml-staging"]
    assert {d["metadata"]["name"] for d in run_accounts} == {"modelmonitor-job"}
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in by_kind(docs, "Role")}
    for ns in ("ml", "ml-staging"):
        assert grants(roles[(ns, "mm-modelmonitor-job")]) == JOB_RUN_GRANTS
        operator = grants(roles[(ns, "mm-modelmonitor")])
        assert operator == MONITORING_GRANTS | {
            ("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")
        }
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["JOB_SERVICE_ACCOUNT"] == "modelmonitor-job"
    # Cluster scope: only the namespaces listed.
    docs = _template(cluster, "ops", "jobMode.enabled=true", "jobMode.namespaces={ml}")
    run_accounts = _run_accounts(docs)
    assert [d["metadata"]["namespace"] for d in run_accounts] == ["ml"]


def test_chart_namespace_scope_defaults_to_the_release_namespace(cluster: KubeCluster) -> None:
    docs = _template(cluster, "ops", "scope=namespace")
    assert {d["metadata"]["namespace"] for d in by_kind(docs, "Role")} == {"ops"}
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["WATCH_NAMESPACES"] == "ops"


def test_chart_cluster_scope_with_patterns(cluster: KubeCluster) -> None:
    docs = _template(cluster, "ops", "watchNamespaces={ml-prod,ml-*}")
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["WATCH_NAMESPACES"] == "ml-prod,ml-*"
    # kopf peers per namespace then; only the exact name gets its KopfPeering.
    assert [d["metadata"]["namespace"] for d in by_kind(docs, "KopfPeering")] == ["ml-prod"]
    assert not by_kind(docs, "ClusterKopfPeering")
    assert by_kind(docs, "ClusterRole")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("scope=galaxy",), "at '/scope': value must be one of 'cluster', 'namespace'"),
        (("logFormat=xml",), "at '/logFormat'"),
        (("replica=2",), "additional properties 'replica' not allowed"),
        (("rbac.actions.rolback=true",), "additional properties 'rolback' not allowed"),
        (("scope=namespace", "watchNamespaces={ml-*}"), "is a pattern"),
        (("scope=namespace", "watchNamespaces={*}"), "needs scope: cluster"),
        (("serviceMonitor.enabled=true", "metrics.service.enabled=false"), "needs metrics"),
    ],
)
def test_chart_refuses_inconsistent_values(
    cluster: KubeCluster, sets: tuple[str, ...], message: str
) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        _template(cluster, "ops", *sets)


def test_chart_optional_objects(cluster: KubeCluster) -> None:
    docs = _template(
        cluster,
        "ops",
        "replicas=2",
        "serviceMonitor.enabled=true",
        "serviceMonitor.labels.release=prom",
        "peering.enabled=false",
        "image.digest=sha256:" + "0" * 64,
    )
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    (deployment,) = by_kind(docs, "Deployment")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert not [d for d in docs if d["apiVersion"] == "kopf.dev/v1"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["PEERING_NAME"] == ""
    assert container["image"].endswith("@sha256:" + "0" * 64)
    assert env_of(container)["JOB_IMAGE"] == container["image"]
    assert deployment["spec"]["replicas"] == 2


# -- server-side dry runs ---------------------------------------------------------------------
def test_chart_cluster_scope_passes_server_dry_run(cluster: KubeCluster, namespace: str) -> None:
    _restricted(cluster, namespace, "warn")
    docs = _template(cluster, namespace, release=_release("dry"))
    warnings = _dry_run(cluster, docs)
    assert RESTRICTED_WARNING not in warnings


def test_chart_namespace_scope_passes_server_dry_run(cluster: KubeCluster, namespace: str) -> None:
    _restricted(cluster, namespace, "warn")
    docs = _template(
        cluster,
        namespace,
        "scope=namespace",
        f"watchNamespaces={{{namespace}}}",
        "replicas=2",
        "rbac.actions.retrain=true",
        "jobMode.enabled=true",
        release=_release("dry"),
    )
    assert by_kind(docs, "PodDisruptionBudget")
    warnings = _dry_run(cluster, docs)
    assert RESTRICTED_WARNING not in warnings


def test_manifests_cluster_install_passes_server_dry_run(
    cluster: KubeCluster, namespace: str
) -> None:
    # The same text, placed in an existing namespace (a dry run creates none).
    _restricted(cluster, namespace, "warn")
    docs = [
        d
        for d in yaml.safe_load_all(
            (MANIFESTS / "install.yaml").read_text().replace("modelmonitor-system", namespace)
        )
        if d and d["kind"] != "Namespace"
    ]
    warnings = _dry_run(cluster, docs)
    assert RESTRICTED_WARNING not in warnings
    # And the Namespace object itself, and the CRDs as manifests/ ships them.
    _dry_run(cluster, (MANIFESTS / "install.yaml").read_text().split("\n---\n", 1)[0])
    cluster.kubectl("apply", "--dry-run=server", "-f", str(MANIFESTS / "crds"))


def test_manifests_namespaced_install_passes_server_dry_run(
    cluster: KubeCluster, namespace: str
) -> None:
    _restricted(cluster, namespace, "warn")
    text = (MANIFESTS / "install-namespaced.yaml").read_text()
    warnings = _dry_run(cluster, text, "-n", namespace)
    assert RESTRICTED_WARNING not in warnings
    _dry_run(cluster, (MANIFESTS / "job-mode.yaml").read_text(), "-n", namespace)


# -- real installs ----------------------------------------------------------------------------
@pytest.fixture
def other_namespace(cluster: KubeCluster) -> Iterator[str]:
    name = f"t-other-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def _gone(cluster: KubeCluster, *ref: str) -> bool:
    out = cluster.kubectl("get", *ref, "--ignore-not-found", "-o", "name").stdout
    return not out.strip()


def _pod_created(cluster: KubeCluster, namespace: str, selector: str) -> Doc | None:
    pods = cluster.get("pods", "-n", namespace, "-l", selector)["items"]
    return pods[0] if pods else None


def test_manifests_namespaced_install_really_applies_with_least_privilege(
    cluster: KubeCluster, namespace: str, other_namespace: str
) -> None:
    _restricted(cluster, namespace, "enforce")
    text = (MANIFESTS / "install-namespaced.yaml").read_text()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)
    # The ReplicaSet controller could create the pod: it passes "restricted" admission.
    pod = wait_for(
        lambda: _pod_created(cluster, namespace, "app.kubernetes.io/name=modelmonitor"),
        timeout=60,
        what="operator pod created",
    )
    assert pod["spec"]["serviceAccountName"] == "modelmonitor"
    sa = f"system:serviceaccount:{namespace}:modelmonitor"
    here = ("-n", namespace)
    assert _can_i(cluster, sa, "watch", "modelmonitors.modelmonitor.io", *here)
    assert _can_i(
        cluster, sa, "patch", "modelmonitors.modelmonitor.io", "--subresource=status", *here
    )
    assert _can_i(cluster, sa, "patch", "kopfpeerings.kopf.dev", *here)
    assert _can_i(cluster, sa, "create", "events", *here)
    assert _can_i(cluster, sa, "get", "secrets", *here)  # the actions role: notify
    assert not _can_i(cluster, sa, "list", "secrets", *here)
    assert not _can_i(cluster, sa, "delete", "deployments.apps", *here)
    assert not _can_i(cluster, sa, "list", "modelmonitors.modelmonitor.io", "-n", other_namespace)
    assert not _can_i(cluster, sa, "list", "namespaces")
    cluster.kubectl("delete", "-n", namespace, "-f", "-", "--wait=true", input=text)


def test_helm_install_and_uninstall(
    cluster: KubeCluster, namespace: str, other_namespace: str
) -> None:
    _restricted(cluster, namespace, "enforce")
    release = _release("mm")
    fullname = f"{release}-modelmonitor"
    peering = f"{release}-peering"  # the shared cluster may hold another "modelmonitor"
    cluster.helm(
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        f"--set=peering.name={peering}",
        "--set=rbac.actions.notify=false",
        "--set=replicas=2",
    )
    status = cluster.helm("status", release, "-n", namespace, "-o", "json").stdout
    assert '"status":"deployed"' in status.replace(" ", "")

    deployment = cluster.get("deployment", fullname, "-n", namespace)
    assert deployment["spec"]["replicas"] == 2
    cluster.get("serviceaccount", fullname, "-n", namespace)
    cluster.get("service", f"{fullname}-metrics", "-n", namespace)
    cluster.get("poddisruptionbudget", fullname, "-n", namespace)
    cluster.get("clusterrole", fullname)
    cluster.get("clusterrolebinding", f"{fullname}-actions")
    cluster.get("clusterkopfpeering", peering)
    selector = f"app.kubernetes.io/instance={release}"
    wait_for(
        lambda: _pod_created(cluster, namespace, selector),
        timeout=60,
        what="operator pod created",
    )

    sa = f"system:serviceaccount:{namespace}:{fullname}"
    assert _can_i(cluster, sa, "list", "modelmonitors.modelmonitor.io", "-A")
    assert _can_i(cluster, sa, "watch", "namespaces")
    assert _can_i(cluster, sa, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert _can_i(cluster, sa, "patch", "clusterkopfpeerings.kopf.dev")
    assert _can_i(cluster, sa, "patch", "deployments.apps", "-n", other_namespace)
    assert not _can_i(cluster, sa, "get", "secrets", "-n", other_namespace)  # notify off
    assert not _can_i(cluster, sa, "create", "jobs.batch", "-n", other_namespace)  # retrain off
    assert not _can_i(cluster, sa, "delete", "deployments.apps", "-n", other_namespace)

    cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout=60s")
    for ref in (
        ("deployment", fullname, "-n", namespace),
        ("serviceaccount", fullname, "-n", namespace),
        ("clusterrole", fullname),
        ("clusterrole", f"{fullname}-actions"),
        ("clusterrolebinding", fullname),
        ("clusterkopfpeering", peering),
    ):
        wait_for(partial(_gone, cluster, *ref), timeout=30, what=f"{' '.join(ref[:2])} removed")
    # CRDs stay (Helm never deletes crds/), so existing ModelMonitors survive an uninstall.
    for crd in CRDS:
        cluster.get("crd", crd)


# -- the operator with exactly the installed permissions -----------------------------------------
# kopf's expected complaints when it runs without cluster rights (namespace scope).
EXPECTED_WITHOUT_CLUSTER_RIGHTS = (
    "Not enough permissions to list namespaces",
    "Not enough permissions to watch for namespaces",
    "Not enough permissions to watch for resources",
    "not allowed to create the peering object",
)


def _sa_kubeconfig(cluster: KubeCluster, namespace: str, sa: str, path: Path) -> Path:
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


def _pod_env(deployment: Doc, namespace: str, pod: str) -> dict[str, str]:
    """The operator container's environment as the kubelet would set it."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    field_values = {"metadata.namespace": namespace, "metadata.name": pod}
    env: dict[str, str] = {}
    for var in container["env"]:
        if "valueFrom" in var:
            env[var["name"]] = field_values[var["valueFrom"]["fieldRef"]["fieldPath"]]
        else:  # $(VAR) refers to a variable defined earlier in the list
            env[var["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), var["value"]
            )
    return env


# Like the pod: the root filesystem read-only, a fresh writable /tmp (the emptyDir), in a
# private mount namespace of the operator process only.
# A checkout that itself lives under /tmp (as CI's clone may) is carried over into the
# fresh /tmp by a bind mount, so the interpreter and the package stay where they were.
READ_ONLY_ROOT = (
    "mount -n --bind / / && mount -n -o remount,bind,ro / && "
    '{ [ -z "$KEEP" ] || mount -n --bind "$KEEP" /mnt; } && '
    "mount -n -t tmpfs -o size=64m tmpfs /tmp && "
    '{ [ -z "$KEEP" ] || { mkdir -p "$KEEP" && mount -n --move /mnt "$KEEP"; }; } && '
    'cd / && exec "$@"'
)


def _kept_under_tmp() -> str:
    """The checkout's folder when it is under /tmp (hidden by the fresh /tmp otherwise)."""
    root = Path(__file__).resolve().parents[2]
    return str(root) if Path("/tmp") in root.parents else ""


def _can_sandbox() -> bool:
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount --bind / /"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def _run_operator_as_installed(
    cluster: KubeCluster,
    namespace: str,
    deployment: Doc,
    tmp_path: Path,
    secrets_dir: Path,
    *,
    read_only_root: bool = False,
) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
    """``modelmonitor run`` with the pod's environment, ServiceAccount and (optionally) a
    read-only root filesystem. Its kubeconfig is in ``secrets_dir``, outside /tmp, so
    that the fresh /tmp does not hide it."""
    pod_spec = deployment["spec"]["template"]["spec"]
    kubeconfig = _sa_kubeconfig(
        cluster, namespace, pod_spec["serviceAccountName"], secrets_dir / "kubeconfig"
    )
    env = _pod_env(deployment, namespace, pod="operator-under-test")
    env["METRICS_PORT"] = str(free_port())
    env["HEALTH_PORT"] = str(free_port())
    env["PAYLOAD_PORT"] = str(free_port())
    argv = [sys.executable, "-m", "modelmonitor", *pod_spec["containers"][0]["args"]]
    if read_only_root:
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh"]
        argv += [sys.executable, "-m", "modelmonitor", *pod_spec["containers"][0]["args"]]
    log = tmp_path / "operator.log"
    proc = subprocess.Popen(
        argv,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={
            "PATH": os.environ.get("PATH", ""),
            # What the image sets.
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "KEEP": _kept_under_tmp() if read_only_root else "",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "KUBECONFIG": str(kubeconfig),
            "RECHECK_SECONDS": "2",
            **env,
        },
        start_new_session=True,
    )
    return proc, log, env


@pytest.fixture
def secrets_dir() -> Iterator[Path]:
    """A private folder outside /tmp (tmpfs when /dev/shm exists) for a token kubeconfig."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else ROOT / ".state"
    path = base / f"modelmonitor-e2e-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o700, parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _healthy(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as rsp:
            return bool(rsp.status == 200)
    except OSError:
        return False


def _peers(cluster: KubeCluster, kind: str, name: str, *where: str) -> set[str]:
    return set((cluster.get(kind, name, *where).get("status") or {}).keys())


def _permission_complaints(log: str, allowed: tuple[str, ...] = ()) -> list[str]:
    lines = [
        line
        for line in log.splitlines()
        if re.search(r"forbidden|permission|\b403\b", line, flags=re.IGNORECASE)
    ]
    # A cluster-wide operator also meets monitors of earlier tests whose namespaces are
    # being deleted; writes there are refused with 403 too, for that reason, not RBAC's.
    allowed = (*allowed, "because it is being terminated")
    return [line for line in lines if not any(ok in line for ok in allowed)]


def _monitor_works(cluster: KubeCluster, namespace: str, log: Path) -> None:
    cluster.apply(model_objects(), "-n", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=monitor("iris"))
    try:
        wait_ready(cluster, namespace, "iris", status="True", reason="Configured", timeout=30)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; operator log:\n{log.read_text()}") from exc


@pytest.mark.parametrize("read_only_root", [False, True], ids=["rw-root", "read-only-root"])
def test_operator_runs_with_the_chart_permissions(
    cluster: KubeCluster,
    namespace: str,
    tmp_path: Path,
    secrets_dir: Path,
    read_only_root: bool,
) -> None:
    if read_only_root and not _can_sandbox():
        pytest.skip("needs root and unshare(1) for a private read-only mount of /")
    release = _release("run")
    peering = f"{release}-peering"
    cluster.helm("install", release, str(CHART), "-n", namespace, f"--set=peering.name={peering}")
    deployment = cluster.get("deployment", f"{release}-modelmonitor", "-n", namespace)
    proc, log, env = _run_operator_as_installed(
        cluster, namespace, deployment, tmp_path, secrets_dir, read_only_root=read_only_root
    )
    try:
        assert env["WATCH_NAMESPACES"] == "*"
        wait_for(lambda: _healthy(env["HEALTH_PORT"]) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, log.read_text()
        _monitor_works(cluster, namespace, log)
        # kopf's keep-alive reached the chart's ClusterKopfPeering (its patch is allowed).
        wait_for(
            lambda: "operator-under-test" in _peers(cluster, "clusterkopfpeering", peering),
            timeout=30,
            what="keep-alive in the ClusterKopfPeering",
        )
    finally:
        _stop(proc)
        cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout=60s")
    text = log.read_text()
    # LOG_FORMAT=json from the chart: one JSON object a line.
    assert all(json.loads(line)["message"] for line in text.splitlines() if line.strip())
    assert not _permission_complaints(text, ("not allowed to create the peering object",)), text
    assert "Read-only file system" not in text


def test_operator_runs_with_the_namespaced_manifest_permissions(
    cluster: KubeCluster, namespace: str, tmp_path: Path, secrets_dir: Path
) -> None:
    text = (MANIFESTS / "install-namespaced.yaml").read_text()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)
    deployment = cluster.get("deployment", "modelmonitor", "-n", namespace)
    proc, log, env = _run_operator_as_installed(
        cluster, namespace, deployment, tmp_path, secrets_dir
    )
    try:
        assert env["WATCH_NAMESPACES"] == namespace
        wait_for(lambda: _healthy(env["HEALTH_PORT"]) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, log.read_text()
        _monitor_works(cluster, namespace, log)
        wait_for(
            lambda: (
                "operator-under-test"
                in _peers(cluster, "kopfpeering", "modelmonitor", "-n", namespace)
            ),
            timeout=30,
            what="keep-alive in the KopfPeering",
        )
    finally:
        _stop(proc)
        cluster.kubectl("delete", "-n", namespace, "-f", "-", "--wait=true", input=text)
    complaints = _permission_complaints(log.read_text(), EXPECTED_WITHOUT_CLUSTER_RIGHTS)
    assert not complaints, log.read_text()


# -- the chart's pod on the harness's node -----------------------------------------------------
def _pod_ready(cluster: KubeCluster, namespace: str, selector: str) -> Doc | None:
    for pod in cluster.get("pods", "-n", namespace, "-l", selector)["items"]:
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return dict(pod)
    return None


def test_helm_installed_operator_pod_runs_and_reconciles(
    cluster: KubeCluster, node_agent: NodeAgent, namespace: str
) -> None:
    release = _release("pod")
    repository = f"chart-e2e/modelmonitor-{release}"  # registered for this test only
    # The operator's image as the Dockerfile builds it: entry point, CMD and environment.
    image = replace(
        modelmonitor_image(),
        cmd=["run"],
        env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"},
    )
    node_agent.register_image(f"{repository}:dev", image)
    cluster.helm(
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        f"--set=image.repository={repository}",
        "--set=image.tag=dev",
        f"--set=peering.name={release}-peering",
        # The pod's ports are the machine's: keep clear of anything else listening.
        f"--set=metrics.port={free_port()}",
        f"--set=health.port={free_port()}",
        f"--set=payloadLog.port={free_port()}",
        "--set=probes.startup.periodSeconds=1",
        # The node agent kills a container at its first failed startup probe (it does not
        # wait for failureThreshold yet); give the operator time to listen first.
        "--set=probes.startup.initialDelaySeconds=25",
        "--set=probes.readiness.periodSeconds=1",
    )
    selector = f"app.kubernetes.io/instance={release}"
    try:
        try:
            # Startup and readiness probes: GET /healthz on the health port.
            pod = wait_for(
                lambda: _pod_ready(cluster, namespace, selector),
                timeout=90,
                what="operator pod Ready",
            )
            cluster.apply(model_objects(), "-n", namespace)
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=monitor("iris"))
            wait_ready(cluster, namespace, "iris", status="True", reason="Configured", timeout=30)
        except (AssertionError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{node_agent.describe(namespace, selector)}") from exc
        deployment = cluster.get("deployment", f"{release}-modelmonitor", "-n", namespace)
        assert deployment["status"].get("availableReplicas") == 1
        log = node_agent.pod_log(namespace, pod["metadata"]["name"], "operator")
        assert "modelmonitor operator starting" in log
        assert not _permission_complaints(log, ("not allowed to create the peering object",))
    finally:
        cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout=60s")
    wait_for(
        lambda: not cluster.get("pods", "-n", namespace, "-l", selector)["items"],
        timeout=60,
        what="operator pod gone after uninstall",
    )
