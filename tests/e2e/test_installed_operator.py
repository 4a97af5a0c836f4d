"""The operator with exactly what an install grants, and the chart's pod on the harness's node.

``modelmonitor run`` runs as a local process in the pod's place: with the Deployment's
environment and a token of the installed ServiceAccount, i.e. with exactly the
permissions the install grants, and (where unshare(1) allows) with a read-only root
filesystem and a fresh /tmp, like the pod. Where the harness acts as a node
(``node_agent``), the installed chart's pod really runs: its probes pass and it
reconciles a monitor. The chart itself is tested in test_helm.py.
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
from pathlib import Path

import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import NodeAgent
from tests.e2e.chart_fixtures import (
    ALLOW_LOOPBACK,
    CHART,
    MANIFESTS,
    ROOT,
    Doc,
    release_name,
    sa_kubeconfig,
    with_chart_crds,
)
from tests.e2e.conftest_node import modelmonitor_image
from tests.e2e.operator_fixtures import free_port
from tests.e2e.test_operator import model_objects, monitor, wait_ready


@pytest.fixture(scope="module")
def cluster(kube_cluster: KubeCluster) -> KubeCluster:
    return with_chart_crds(kube_cluster)


# -- the operator with exactly the installed permissions -----------------------------------------
# kopf's expected complaints when it runs without cluster rights (namespace scope).
EXPECTED_WITHOUT_CLUSTER_RIGHTS = (
    "Not enough permissions to list namespaces",
    "Not enough permissions to watch for namespaces",
    "Not enough permissions to watch for resources",
)


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
                r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), var.get("value", "")
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
    kubeconfig = sa_kubeconfig(
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


def _lease_holder(cluster: KubeCluster, name: str, namespace: str) -> str:
    """Who holds the leader Lease ("" while none exists yet)."""
    out = cluster.kubectl(
        "get", "lease", name, "-n", namespace, "--ignore-not-found", "-o", "json"
    ).stdout
    return str(
        ((json.loads(out) if out.strip() else {}).get("spec") or {}).get("holderIdentity") or ""
    )


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
    release = release_name("run")
    cluster.helm(
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        ALLOW_LOOPBACK,
    )
    deployment = cluster.get("deployment", f"{release}-modelmonitor", "-n", namespace)
    proc, log, env = _run_operator_as_installed(
        cluster, namespace, deployment, tmp_path, secrets_dir, read_only_root=read_only_root
    )
    try:
        assert env["WATCH_NAMESPACES"] == "*"
        wait_for(lambda: _healthy(env["HEALTH_PORT"]) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, log.read_text()
        _monitor_works(cluster, namespace, log)
        # it took the chart's leader Lease in its namespace (the Role allows exactly that)
        wait_for(
            lambda: _lease_holder(cluster, f"{release}-modelmonitor", namespace).startswith(
                "operator-under-test_"
            ),
            timeout=15,
            what="the operator holds the chart's leader Lease",
        )
    finally:
        _stop(proc)
        cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout=60s")
    text = log.read_text()
    # LOG_FORMAT=json from the chart: one JSON object a line.
    assert all(json.loads(line)["message"] for line in text.splitlines() if line.strip())
    assert not _permission_complaints(text), text
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
            lambda: _lease_holder(cluster, "modelmonitor", namespace).startswith(
                "operator-under-test_"
            ),
            timeout=15,
            what="the operator holds the manifest's leader Lease",
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
    release = release_name("pod")
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
        ALLOW_LOOPBACK,
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
        assert not _permission_complaints(log)
    finally:
        cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout=60s")
    wait_for(
        lambda: not cluster.get("pods", "-n", namespace, "-l", selector)["items"],
        timeout=60,
        what="operator pod gone after uninstall",
    )
