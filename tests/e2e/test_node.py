"""The harness as a node: pods bound to it run as local processes, and the rest of the
control plane (ReplicaSets, rollouts, EndpointSlices, Jobs, RBAC) treats them as real."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.environment import expand_vars
from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import Backoff, ContainerContext, LocalImage, NodeAgent
from tests.cluster.volumes import rewrite_mount_paths
from tests.e2e.conftest_node import modelmonitor_image

PORT = 8080
Doc = dict[str, Any]

# Plain HTTP to pod IPs, never through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(ip: str, path: str = "/version.txt", port: int = PORT) -> str | None:
    """The body at http://ip:port/path, or None when nothing answers."""
    try:
        with _opener.open(f"http://{ip}:{port}{path}", timeout=2) as response:
            return str(response.read().decode().strip())
    except (urllib.error.URLError, OSError):
        return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pid_of(pod: Doc) -> int:
    container_id = pod["status"]["containerStatuses"][0]["containerID"]
    return int(container_id.removeprefix("local://"))


def web_image(directory: Path) -> LocalImage:
    """A static web server on the pod's address, serving ``directory``."""
    return LocalImage(
        entrypoint=[sys.executable, "-m", "http.server", "--bind", "$(POD_IP)"],
        cmd=[str(PORT)],
        workdir=directory,
    )


@pytest.fixture
def web_images(node_agent: NodeAgent, tmp_path: Path, namespace: str) -> tuple[str, str]:
    """Two versions of a web image; each serves its version in /version.txt."""
    names = []
    for version in ("v1", "v2"):
        directory = tmp_path / version
        directory.mkdir()
        (directory / "version.txt").write_text(f"web {version}\n")
        name = f"node-test/web-{namespace}:{version}"
        node_agent.register_image(name, web_image(directory))
        names.append(name)
    return names[0], names[1]


def deployment(name: str, image: str) -> Doc:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": PORT}],
                            "readinessProbe": {
                                "httpGet": {"path": "/version.txt", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def service(name: str) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": PORT}]},
    }


def running_pods(cluster: KubeCluster, namespace: str, selector: str) -> list[Doc]:
    pods = cluster.get("pods", "-n", namespace, "-l", selector)["items"]
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def rollout(cluster: KubeCluster, namespace: str, name: str, node_agent: NodeAgent) -> Doc:
    """Wait for the rollout to finish; return the one pod left serving."""

    def single_running_pod() -> Doc | None:
        pods: list[Doc] = cluster.get("pods", "-n", namespace, "-l", f"app={name}")["items"]
        if len(pods) == 1 and pods[0]["status"].get("phase") == "Running":
            return pods[0]
        return None

    try:
        cluster.kubectl(
            "rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=40s", timeout=50
        )
        return wait_for(single_running_pod, timeout=20, what=f"a single pod of {name}")
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc}\n{node_agent.describe(namespace)}") from exc


def test_deployment_becomes_available_and_its_service_endpoints_answer(
    kube_cluster: KubeCluster, node_agent: NodeAgent, namespace: str, web_images: tuple[str, str]
) -> None:
    kube_cluster.apply([deployment("web", web_images[0]), service("web")], "-n", namespace)
    pod = rollout(kube_cluster, namespace, "web", node_agent)
    dep = kube_cluster.get("deployment", "web", "-n", namespace)
    assert dep["status"]["readyReplicas"] == 1
    available = {c["type"]: c["status"] for c in dep["status"]["conditions"]}
    assert available["Available"] == "True"
    ip = pod["status"]["podIP"]
    assert pod["spec"]["nodeName"] == node_agent.node_name
    assert ipaddress.ip_address(ip) in node_agent.network.block
    assert http_get(ip) == "web v1"
    statuses = pod["status"]["containerStatuses"]
    assert statuses[0]["ready"]
    assert statuses[0]["restartCount"] == 0
    assert "running" in statuses[0]["state"]
    if not node_agent.routable:
        pytest.skip("loopback pod IPs: the API server refuses them in EndpointSlices")

    def endpoint_ips() -> list[str] | None:
        slices = kube_cluster.get(
            "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=web"
        )["items"]
        ips = [
            address
            for s in slices
            for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")
            for address in e["addresses"]
        ]
        return ips or None

    ips = wait_for(endpoint_ips, timeout=20, what="a ready endpoint for Service web")
    assert ips == [ip]
    assert http_get(ips[0]) == "web v1"


def test_rolling_update_and_undo_switch_the_serving_process(
    kube_cluster: KubeCluster, node_agent: NodeAgent, namespace: str, web_images: tuple[str, str]
) -> None:
    v1, v2 = web_images
    kube_cluster.apply(deployment("web", v1), "-n", namespace)
    first = rollout(kube_cluster, namespace, "web", node_agent)
    assert http_get(first["status"]["podIP"]) == "web v1"

    kube_cluster.kubectl("set", "image", "deployment/web", f"web={v2}", "-n", namespace)
    second = rollout(kube_cluster, namespace, "web", node_agent)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert http_get(second["status"]["podIP"]) == "web v2"
    assert not process_alive(pid_of(first)), "the v1 process outlived its pod"
    assert http_get(first["status"]["podIP"]) is None

    kube_cluster.kubectl("rollout", "undo", "deployment/web", "-n", namespace)
    third = rollout(kube_cluster, namespace, "web", node_agent)
    assert third["spec"]["containers"][0]["image"] == v1
    assert http_get(third["status"]["podIP"]) == "web v1"
    assert not process_alive(pid_of(second)), "the v2 process outlived its pod"
    revision = kube_cluster.get("deployment", "web", "-n", namespace)["metadata"]["annotations"]
    assert revision["deployment.kubernetes.io/revision"] == "3"


LIST_PODS = textwrap.dedent(
    """
    import sys
    from kubernetes import client, config
    config.load_kube_config()
    try:
        pods = client.CoreV1Api().list_namespaced_pod(sys.argv[1])
    except client.ApiException as exc:
        print("denied:", exc.status, exc.reason)
        sys.exit(3)
    print("pods:", " ".join(p.metadata.name for p in pods.items))
    """
)


def job(name: str, image: str, namespace: str) -> Doc:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "serviceAccountName": "lister",
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "list", "image": image, "args": ["-c", LIST_PODS, namespace]}
                    ],
                }
            },
        },
    }


def job_condition(cluster: KubeCluster, namespace: str, name: str) -> str | None:
    conditions = cluster.get("job", name, "-n", namespace).get("status", {}).get("conditions")
    for condition in conditions or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return None


def test_job_pod_talks_to_the_api_as_its_service_account(
    kube_cluster: KubeCluster, node_agent: NodeAgent, namespace: str
) -> None:
    image = f"node-test/python-{namespace}:3"
    node_agent.register_image(image, LocalImage(entrypoint=[sys.executable]))
    kube_cluster.kubectl("create", "serviceaccount", "lister", "-n", namespace)

    kube_cluster.apply(job("denied", image, namespace), "-n", namespace)
    outcome = wait_for(
        lambda: job_condition(kube_cluster, namespace, "denied"), timeout=40, what="Job done"
    )
    assert outcome == "Failed", node_agent.describe(namespace)
    (pod,) = kube_cluster.get("pods", "-n", namespace, "-l", "job-name=denied")["items"]
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    log = node_agent.pod_log(namespace, pod["metadata"]["name"], "list")
    assert "denied: 403" in log
    # The same output through the API server, as `kubectl logs` reads it from a kubelet.
    logs = kube_cluster.kubectl("logs", pod["metadata"]["name"], "-n", namespace).stdout
    assert logs.startswith("denied: 403")

    kube_cluster.kubectl(
        "create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", namespace
    )
    kube_cluster.kubectl(
        "create",
        "rolebinding",
        "lister-reads-pods",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:lister",
        "-n",
        namespace,
    )
    kube_cluster.apply(job("allowed", image, namespace), "-n", namespace)
    outcome = wait_for(
        lambda: job_condition(kube_cluster, namespace, "allowed"), timeout=40, what="Job done"
    )
    assert outcome == "Complete", node_agent.describe(namespace)
    (pod,) = kube_cluster.get("pods", "-n", namespace, "-l", "job-name=allowed")["items"]
    assert pod["status"]["phase"] == "Succeeded"
    log = node_agent.pod_log(namespace, pod["metadata"]["name"], "list")
    assert pod["metadata"]["name"] in log.split("pods:", 1)[1]


def test_crashing_container_restarts_with_backoff(
    kube_cluster: KubeCluster, node_agent: NodeAgent, namespace: str
) -> None:
    image = f"node-test/crash-{namespace}:1"
    node_agent.register_image(
        image,
        LocalImage(entrypoint=[sys.executable, "-c", "print('crashing'); raise SystemExit(7)"]),
    )
    kube_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "crash"},
            "spec": {"containers": [{"name": "c", "image": image}]},
        },
        "-n",
        namespace,
    )

    def restarted_twice() -> Doc | None:
        pod = kube_cluster.get("pod", "crash", "-n", namespace)
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        return statuses[0] if statuses[0].get("restartCount", 0) >= 2 else None

    status = wait_for(restarted_twice, timeout=30, what="two restarts")
    assert status["lastState"]["terminated"]["exitCode"] == 7
    pod = kube_cluster.get("pod", "crash", "-n", namespace)
    assert pod["status"]["phase"] == "Running"
    assert node_agent.pod_log(namespace, "crash", "c").count("crashing") >= 3
    previous = kube_cluster.kubectl("logs", "crash", "-n", namespace, "--previous").stdout
    assert previous == "crashing\n"
    reasons = kube_cluster.get(
        "events", "-n", namespace, "--field-selector=involvedObject.name=crash"
    )
    assert "BackOff" in {e["reason"] for e in reasons["items"]}


SLEEPER = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def test_deleting_a_pod_stops_its_process(
    kube_cluster: KubeCluster, node_agent: NodeAgent, namespace: str
) -> None:
    image = f"node-test/sleeper-{namespace}:1"
    node_agent.register_image(image, LocalImage(entrypoint=[sys.executable, "-c", SLEEPER]))
    for name in ("graceful", "forced"):
        kube_cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": image}],
                },
            },
            "-n",
            namespace,
        )

    def both_running() -> list[Doc] | None:
        pods = running_pods(kube_cluster, namespace, "!job-name")
        return pods if len(pods) == 2 else None

    pods = wait_for(both_running, timeout=20, what="two running pods")
    pids = {p["metadata"]["name"]: pid_of(p) for p in pods}
    assert all(process_alive(pid) for pid in pids.values())

    # SIGTERM is ignored: SIGKILL after the 1 s grace period, then the agent deletes it.
    kube_cluster.kubectl("delete", "pod", "graceful", "-n", namespace, "--timeout=15s", timeout=20)
    assert not process_alive(pids["graceful"])
    # Removed from the API at once: the agent sees it vanish and kills the process.
    kube_cluster.kubectl("delete", "pod", "forced", "-n", namespace, "--grace-period=0", "--force")
    wait_for(
        lambda: not process_alive(pids["forced"]), timeout=10, what="forced pod's process gone"
    )


def test_unknown_image_waits_then_runs_with_the_pod_environment_and_volumes(
    kube_cluster: KubeCluster, node_agent: NodeAgent, namespace: str
) -> None:
    image = f"node-test/env-{namespace}:1"
    kube_cluster.kubectl(
        "create", "configmap", "settings", "--from-literal=colour=blue", "-n", namespace
    )
    env = [
        {"name": "EARLY", "value": "hello $(POD_NAME)"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GREETING", "value": "hello $(POD_NAME) $$(POD_NAME)"},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {
            "name": "COLOUR",
            "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "colour"}},
        },
    ]
    dump = (
        "import json, os, sys; env = dict(os.environ); "
        "env['FILE'] = open(sys.argv[1]).read(); "
        "env['TOKEN'] = open(os.path.join(env['ACCOUNT_DIR'], 'token')).read(); "
        "print(json.dumps(env))"
    )
    env.append({"name": "ACCOUNT_DIR", "value": "/var/run/secrets/kubernetes.io/serviceaccount"})
    mounts = [{"name": "settings", "mountPath": "/etc/settings"}]
    kube_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "env"},
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": "settings", "configMap": {"name": "settings"}}],
                "containers": [
                    {
                        "name": "c",
                        "image": image,
                        "env": env,
                        "args": ["-c", dump, "/etc/settings/colour"],
                        "volumeMounts": mounts,
                    }
                ],
            },
        },
        "-n",
        namespace,
    )

    def waiting_reason() -> str | None:
        statuses = kube_cluster.get("pod", "env", "-n", namespace)["status"].get(
            "containerStatuses"
        )
        reason = (statuses or [{}])[0].get("state", {}).get("waiting", {}).get("reason")
        return str(reason) if reason else None

    assert wait_for(waiting_reason, timeout=20, what="a waiting reason") == "ImageNotKnown"
    node_agent.register_image(image, LocalImage(entrypoint=[sys.executable]))
    wait_for(
        lambda: kube_cluster.get("pod", "env", "-n", namespace)["status"]["phase"] == "Succeeded",
        timeout=20,
        what="pod env Succeeded",
    )
    pod = kube_cluster.get("pod", "env", "-n", namespace)
    seen = json.loads(node_agent.pod_log(namespace, "env", "c").splitlines()[-1])
    assert seen["POD_IP"] == seen["IP"] == pod["status"]["podIP"]
    assert seen["NS"] == namespace
    assert seen["COLOUR"] == "blue"
    assert seen["GREETING"] == "hello env $(POD_NAME)"
    assert seen["EARLY"] == "hello $(POD_NAME)"  # defined before POD_NAME: left as it is
    # Volumes are local directories; paths under a mountPath in args and env point there.
    assert seen["FILE"] == "blue"
    # The ServiceAccount admission plugin's projected volume: the pod's token.
    assert seen["TOKEN"].count(".") == 2
    kubeconfig = Path(seen["KUBECONFIG"])
    assert kubeconfig != kube_cluster.kubeconfig
    assert "client-key" not in kubeconfig.read_text()


def test_job_runs_the_modelmonitor_cli_on_files_from_a_configmap_volume(
    kube_cluster: KubeCluster, node_agent: NodeAgent, namespace: str
) -> None:
    image = f"node-test/modelmonitor-{namespace}:dev"
    node_agent.register_image(image, modelmonitor_image())
    rows = "\n".join(f"{i % 7},{'ab'[i % 2]}" for i in range(60))
    kube_cluster.kubectl(
        "create",
        "configmap",
        "data",
        f"--from-literal=reference.csv=x,c\n{rows}\n",
        f"--from-literal=current.csv=x,c\n{rows}\n",
        "-n",
        namespace,
    )
    check = ["check", "--reference", "/data/reference.csv", "--current", "/data/current.csv"]
    manifest = job("check", image, namespace)
    pod_spec = manifest["spec"]["template"]["spec"]
    pod_spec.pop("serviceAccountName")
    pod_spec["volumes"] = [{"name": "data", "configMap": {"name": "data"}}]
    pod_spec["containers"][0].update(
        args=[*check, "--format", "json"],
        volumeMounts=[{"name": "data", "mountPath": "/data", "readOnly": True}],
    )
    kube_cluster.apply(manifest, "-n", namespace)
    outcome = wait_for(
        lambda: job_condition(kube_cluster, namespace, "check"), timeout=60, what="Job done"
    )
    assert outcome == "Complete", node_agent.describe(namespace)
    (pod,) = kube_cluster.get("pods", "-n", namespace, "-l", "job-name=check")["items"]
    report = json.loads(
        kube_cluster.kubectl("logs", pod["metadata"]["name"], "-n", namespace).stdout
    )
    assert report["dataset"]["total_features"] == 2
    assert report["dataset"]["drifted"] is False


@pytest.mark.timeout(300)
def test_node_runs_pods_after_the_api_server_was_away_for_longer_than_a_heartbeat(
    control_plane: ControlPlane | None,
    kube_cluster: KubeCluster,
    node_agent: NodeAgent,
    namespace: str,
    web_images: tuple[str, str],
) -> None:
    """Every thread of the agent outlives an API server that does not answer: the
    heartbeat goes on renewing the node's Lease (a stale one gets the node tainted, and
    no pod scheduled to it), the pod watch sees new pods, and running pods keep running."""
    if control_plane is None:
        pytest.skip("stops the API server of the session's own control plane")
    v1, v2 = web_images
    kube_cluster.apply(deployment("before", v1), "-n", namespace)
    before = rollout(kube_cluster, namespace, "before", node_agent)

    def renew_time() -> str:
        lease = kube_cluster.get("lease", node_agent.node_name, "-n", "kube-node-lease")
        return str(lease["spec"]["renewTime"])

    # Restarted on the same port, and ready again when the block ends. The controller
    # manager and the scheduler stop with it: left running through the restart, they were
    # slow to recover (the ReplicaSet controller worked from a stale pod cache for more
    # than half a minute), which this test and later ones would feel.
    with control_plane.stopped("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        time.sleep(node_agent.heartbeat_seconds * 1.5)
    seen = renew_time()
    wait_for(
        lambda: renew_time() != seen,
        timeout=node_agent.heartbeat_seconds * 3,
        what="the node's Lease renewed after the API server came back",
    )

    kube_cluster.apply(deployment("after", v2), "-n", namespace)
    after = rollout(kube_cluster, namespace, "after", node_agent)
    assert http_get(after["status"]["podIP"]) == "web v2"
    (still,) = running_pods(kube_cluster, namespace, "app=before")
    assert pid_of(still) == pid_of(before)
    assert still["status"]["containerStatuses"][0]["restartCount"] == 0
    assert http_get(still["status"]["podIP"]) == "web v1"


# -- the pure parts, no cluster needed ---------------------------------------------------------


def test_expand_vars_follows_kubernetes_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand_vars("$(A)-$(B)", env) == "1-two"
    assert expand_vars("$(MISSING) $$(A) $A", env) == "$(MISSING) $(A) $A"


def test_mount_paths_are_rewritten_only_as_whole_path_prefixes() -> None:
    mounts = {"/data": Path("/tmp/p/volumes/data"), "/data/deep": Path("/tmp/q")}
    assert rewrite_mount_paths("--ref=/data/x.csv", mounts) == "--ref=/tmp/p/volumes/data/x.csv"
    assert rewrite_mount_paths("/data/deep/y", mounts) == "/tmp/q/y"
    assert rewrite_mount_paths("/database /x/data /data", mounts) == (
        "/database /x/data /tmp/p/volumes/data"
    )


def test_local_image_follows_docker_entrypoint_and_cmd_rules(tmp_path: Path) -> None:
    image = LocalImage(entrypoint=["serve", "--bind", "$(POD_IP)"], cmd=["8080"])

    def argv(command: tuple[str, ...] = (), args: tuple[str, ...] = ()) -> list[str]:
        ctx = ContainerContext(
            pod={},
            container={"name": "c"},
            pod_ip="10.244.1.2",
            env={"POD_IP": "10.244.1.2"},
            pod_dir=tmp_path,
            command=command,
            args=args,
        )
        return list(image(ctx).argv)

    assert argv() == ["serve", "--bind", "10.244.1.2", "8080"]
    assert argv(args=("9090",)) == ["serve", "--bind", "10.244.1.2", "9090"]
    assert argv(command=("other",)) == ["other"]
    assert argv(command=("other",), args=("x",)) == ["other", "x"]


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(base=0.5, cap=3.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
