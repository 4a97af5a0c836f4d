"""The test harness as a Kubernetes node: pods bound to it run as local processes.

There is no kubelet and no container runtime here. :class:`NodeAgent` stands in for
both: it registers a Node, keeps its Lease and status fresh, watches the pods that
the scheduler binds to it, and runs each container as a local process. How an image
"runs" is up to the test: it registers an :data:`ImageRunner` per image name (see
:class:`LocalImage` for the usual Docker entrypoint/cmd rules).

Each pod gets its own IP address from a :class:`PodNetwork`: a /24 block of a CIDR
routed to the loopback interface (``10.244.0.0/16`` by default, set up once with
``ip route add local ... dev lo``), so a process binds to its pod IP and the
EndpointSlice controller publishes that IP for Services. Without the privilege to add
the route, pods get 127.x addresses instead: they still run and answer, but the API
server refuses loopback addresses in EndpointSlices, so Services have no endpoints.

Services work as a kube-proxy and CoreDNS would make them work (``services``): the
service CIDR is routed to ``lo`` too, and the agent relays each connection to a
ClusterIP port to a ready endpoint (kube-proxy's old userspace mode: netfilter is not
usable here) and answers DNS for ``<svc>.<ns>.svc.cluster.local`` on port 53 of the
node's address, forwarding other names to the host's resolver. A container of a pod
with dnsPolicy ClusterFirst sees its own /etc/resolv.conf (that DNS, the pod's search
path, ``ndots:5``) and /etc/hosts, bind-mounted in a mount namespace of its own, and
the pod's hostname (``pod_dns``); without ``unshare`` or the right to mount, pods keep
the host's files.
Stand-ins, not the real parts: the relay costs a copy per byte, and exec probes run
outside the pod's mount namespace.

A container process gets a clean environment (never the harness's own ``KUBECONFIG``):
``POD_IP``, the container's ``env``/``envFrom`` (values, fieldRefs, ConfigMap and Secret
keys), and ``KUBECONFIG`` pointing at a per-pod kubeconfig holding a token that the
TokenRequest API issued for the pod's ServiceAccount, bound to the pod, so RBAC applies
to it as in a real cluster. Container output goes to ``<work_dir>/pods/<pod>/<container>.log``.

This module is the agent itself and the harness's import point for it; its parts live
beside it: ``api`` (its API client), ``images``, ``network``, ``environment``,
``volumes``, ``probes``, ``containers``, ``pod_worker`` (one thread per pod),
``kubelet_api`` (container logs for ``kubectl logs``), ``services`` (with
``service_table``, ``service_proxy``, ``cluster_dns``, ``dns_wire``) and ``pod_dns``.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import platform
import re
import signal
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import pki
from tests.cluster.api import ApiError, KubeApi, Obj, now_micro_timestamp, now_timestamp
from tests.cluster.containers import AGENT_PID_ENV, Backoff, Container
from tests.cluster.controlplane import SERVICE_CIDR
from tests.cluster.images import ContainerContext, ImageRunner, Launch, LocalImage
from tests.cluster.kubelet_api import LogServer
from tests.cluster.network import PodNetwork
from tests.cluster.pod_dns import isolation_problem
from tests.cluster.pod_worker import PodWorker
from tests.cluster.services import ServiceNetwork

__all__ = [
    "NODE_LABEL",
    "Backoff",
    "ContainerContext",
    "ImageRunner",
    "Launch",
    "LocalImage",
    "NodeAgent",
    "PodNetwork",
    "reap_orphan_processes",
]

log = logging.getLogger(__name__)

NODE_LABEL = "modelmonitor.io/local-node"
EVENT_REPEAT_SECONDS = 30.0


def _cluster_entry(kubeconfig: Path) -> Obj:
    """The current context's cluster of a kubeconfig (server, CA embedded)."""
    config = yaml.safe_load(kubeconfig.read_text()) or {}
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    context = contexts.get(config.get("current-context", ""), {})
    cluster = dict(clusters.get(context.get("cluster", ""), {}))
    ca_file = cluster.pop("certificate-authority", None)
    if ca_file:
        ca_path = Path(ca_file)
        if not ca_path.is_absolute():
            ca_path = kubeconfig.parent / ca_path
        cluster["certificate-authority-data"] = base64.b64encode(ca_path.read_bytes()).decode()
    return {k: v for k, v in cluster.items() if k != "extensions"}


def reap_orphan_processes() -> list[int]:
    """Kill container processes whose node agent is gone (its test session was killed)."""
    marker = f"{AGENT_PID_ENV}=".encode()
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        owner = next((e[len(marker) :] for e in environ if e.startswith(marker)), None)
        if owner is None or not owner.isdigit() or Path(f"/proc/{int(owner)}").exists():
            continue
        pid = int(proc.name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


class NodeAgent:
    """A Node whose pods run as local processes. Use :meth:`start`/:meth:`stop` or ``with``.

    ``images`` maps image names (exactly as in pod specs) to runners; more can be added
    at any time with :meth:`register_image`, and pods waiting for an unknown image
    (reason ``ImageNotKnown``) start once it is registered.
    """

    def __init__(
        self,
        kubeconfig: Path,
        *,
        work_dir: Path,
        node_name: str = "local-node",
        images: Mapping[str, ImageRunner] | None = None,
        network: PodNetwork | None = None,
        capacity: Mapping[str, str] | None = None,
        backoff: Backoff | None = None,
        heartbeat_seconds: float = 10.0,
        stop_grace: float = 5.0,
        service_cidr: str | None = SERVICE_CIDR,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.work_dir = Path(work_dir)
        self.pods_dir = self.work_dir / "pods"
        self.node_name = node_name
        self.images: dict[str, ImageRunner] = dict(images or {})
        self._network = network
        self.capacity = dict(capacity or {"cpu": "8", "memory": "16Gi", "pods": "110"})
        self.backoff = backoff or Backoff()
        self.heartbeat_seconds = heartbeat_seconds
        self.stop_grace = stop_grace
        self.stopping = threading.Event()
        self._api: KubeApi | None = None
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._node_uid = ""
        self._since = now_timestamp()
        self._cluster = _cluster_entry(self.kubeconfig)
        self._log_server: LogServer | None = None
        self._warned_at: dict[tuple[str, str, str], float] = {}
        # None: no Service routing nor cluster DNS (the host's resolver for every pod).
        self.service_cidr = service_cidr
        self.services: ServiceNetwork | None = None
        self._isolation = False

    # -- public API ---------------------------------------------------------------------------
    @property
    def api(self) -> KubeApi:
        if self._api is None:
            raise RuntimeError("the node agent is not started")
        return self._api

    @property
    def network(self) -> PodNetwork:
        if self._network is None:
            raise RuntimeError("the node agent is not started")
        return self._network

    @property
    def host_ip(self) -> str:
        return self.network.gateway

    @property
    def routable(self) -> bool:
        """Whether pod IPs can appear in EndpointSlices (not loopback)."""
        return self.network.routable

    @property
    def pod_nameserver(self) -> str | None:
        """The cluster DNS address for pods' resolv.conf; None: pods keep the host's."""
        if self.services is None or self.services.dns is None or not self._isolation:
            return None
        return self.services.dns_ip

    def register_image(self, name: str, runner: ImageRunner) -> None:
        with self._lock:
            self.images[name] = runner
            workers = list(self._workers.values())
        for worker in workers:
            worker.wake()

    def unregister_image(self, name: str) -> None:
        with self._lock:
            self.images.pop(name, None)

    def image_runner(self, name: str) -> ImageRunner | None:
        with self._lock:
            return self.images.get(name)

    def start(self, timeout: float = 60.0) -> NodeAgent:
        """Register the Node, start heartbeats and the pod watch; wait until schedulable."""
        reap_orphan_processes()
        if self._network is None:
            self._network = PodNetwork.claim()
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self._api = KubeApi(self.kubeconfig)
        cert_dir = self.work_dir / "pki"
        cert_dir.mkdir(exist_ok=True)
        self._log_server = LogServer(self, self.host_ip, pki.create_ca(cert_dir, self.node_name))
        self._start_services()
        self._register()
        for target, name in (
            (self._heartbeat_loop, "heartbeat"),
            (self._watch_loop, "watch"),
            (self._log_server.serve_forever, "kubelet API"),
        ):
            thread = threading.Thread(target=target, name=f"node {name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + timeout
        while not self._schedulable():
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {self.node_name} not Ready and untainted in time")
            time.sleep(0.2)
        log.info("node %s ready; pod network %s", self.node_name, self.network.block)
        return self

    def stop(self) -> None:
        """Stop every pod's processes and delete the Node."""
        if self._api is None:
            return
        self.stopping.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.wake()
        for worker in workers:
            worker.thread.join(timeout=self.stop_grace + 10)
        with contextlib.suppress(ApiError, OSError):
            self.api.delete(f"/api/v1/nodes/{self.node_name}")
        if self.services is not None:
            self.services.stop()
            self.services = None
        if self._log_server is not None:
            self._log_server.shutdown()
            self._log_server.server_close()
            self._log_server = None
        for thread in self._threads:
            thread.join(timeout=1)
        self.api.close()
        self._api = None
        if self._network is not None:
            self._network.close()

    def _start_services(self) -> None:
        """ClusterIP routing, cluster DNS, and whether pods can get their own /etc files."""
        if self.service_cidr is None:
            return
        self.services = ServiceNetwork(self.api, self.host_ip, self.service_cidr).start()
        problem = isolation_problem(self.work_dir / "isolation-probe")
        self._isolation = problem is None
        if problem is not None:
            log.warning("pods keep the host's /etc/resolv.conf (no cluster DNS): %s", problem)
        self.services.wait_synced()

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _log_server_port(self) -> int:
        return self._log_server.port if self._log_server is not None else 0

    def find_container(self, namespace: str, pod: str, name: str) -> Container | None:
        """The running (or last) container ``name`` of the pod ``namespace/pod``."""
        with self._lock:
            workers = [
                w for w in self._workers.values() if (w.namespace, w.name) == (namespace, pod)
            ]
        for worker in workers:
            for container in (*worker.init, *worker.main):
                if container.name == name:
                    return container
        return None

    def pod_dirs(self, namespace: str, name: str) -> list[Path]:
        """The local directories of pods with this name, oldest first."""
        found = self.pods_dir.glob(f"{namespace}_{name}_*")
        return sorted(found, key=lambda p: p.stat().st_mtime)

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        """The output of a pod's container (all containers when None); '' if none yet."""
        dirs = self.pod_dirs(namespace, name)
        if not dirs:
            return ""
        logs = sorted(dirs[-1].glob("*.log"))
        if container is not None:
            logs = [p for p in logs if p.stem == container]
            return logs[0].read_text(errors="replace") if logs else ""
        return "\n".join(f"--- {p.stem} ---\n{p.read_text(errors='replace')}" for p in logs)

    def describe(self, namespace: str, selector: str = "", *, tail: int = 40) -> str:
        """Status and log tails of a namespace's pods (matching ``selector``), for messages."""
        query = {"labelSelector": selector} if selector else {}
        try:
            pods = self.api.get(f"/api/v1/namespaces/{namespace}/pods", **query)["items"]
        except ApiError as exc:
            return f"(cannot list pods: {exc})"
        parts = []
        for pod in pods:
            name = pod["metadata"]["name"]
            status = pod.get("status") or {}
            states = {
                c["name"]: (c.get("state"), c.get("restartCount"))
                for c in status.get("containerStatuses") or []
            }
            lines = self.pod_log(namespace, name).splitlines()[-tail:]
            parts.append(
                f"pod {name}: phase={status.get('phase')} ip={status.get('podIP')} "
                f"containers={states}\n" + "\n".join("    " + line for line in lines)
            )
        return "\n".join(parts) or f"(no pods in {namespace})"

    def pod_kubeconfig(self, account: str, namespace: str, token: str) -> Obj:
        """A kubeconfig for a pod: this cluster's server and CA, the pod's token."""
        user = f"system:serviceaccount:{namespace}:{account}"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": self._cluster}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "pod",
                    "context": {"cluster": "cluster", "user": user, "namespace": namespace},
                }
            ],
            "current-context": "pod",
        }

    def event(
        self,
        pod: Mapping[str, Any],
        kind: str,
        reason: str,
        message: str,
        container: Container | None = None,
    ) -> None:
        """Record an Event about a pod, as a kubelet would (best effort).

        Warnings repeat at most every EVENT_REPEAT_SECONDS per pod, container and reason,
        so a probe failing every second does not flood the API server.
        """
        meta = pod["metadata"]
        if kind == "Warning":
            key = (meta["uid"], container.name if container else "", reason)
            now = time.monotonic()
            with self._lock:
                if now - self._warned_at.get(key, -EVENT_REPEAT_SECONDS) < EVENT_REPEAT_SECONDS:
                    return
                self._warned_at[key] = now
        involved: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        }
        if container is not None:
            group = "initContainers" if container.init else "containers"
            involved["fieldPath"] = f"spec.{group}{{{container.name}}}"
        stamp = now_timestamp()
        body = {
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}"},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1024],
            "type": kind,
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        with contextlib.suppress(ApiError, OSError):
            self.api.create(f"/api/v1/namespaces/{meta['namespace']}/events", body)

    # -- the Node -----------------------------------------------------------------------------
    def _register(self) -> None:
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": _arch(),
            NODE_LABEL: "true",
        }
        metadata: Obj = {"name": self.node_name, "labels": labels}
        body: Obj = {"apiVersion": "v1", "kind": "Node", "metadata": metadata}
        try:
            node = self.api.create("/api/v1/nodes", body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            node = self.api.patch(f"/api/v1/nodes/{self.node_name}", {"metadata": metadata})
        self._node_uid = node["metadata"]["uid"]
        self._post_status()
        self._renew_lease()

    def _post_status(self) -> None:
        now = now_timestamp()

        def condition(kind: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self._since,
            }

        uname = platform.uname()
        status = {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
                condition("Ready", "True", "KubeletReady", "node agent is posting ready status"),
            ],
            # No Hostname address: the API server would prefer it to reach the kubelet
            # API, and nothing resolves the node's name.
            "addresses": [{"type": "InternalIP", "address": self.host_ip}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self._log_server_port}},
            "nodeInfo": {
                "machineID": self._node_uid.replace("-", ""),
                "systemUUID": self._node_uid,
                "bootID": self._node_uid,
                "kernelVersion": uname.release,
                "osImage": "modelmonitor node agent (local processes)",
                "containerRuntimeVersion": "local://0",
                "kubeletVersion": _pinned_k8s_version(),
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }
        self.api.patch(f"/api/v1/nodes/{self.node_name}/status", {"status": status})

    def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": 40,
            "renewTime": now_micro_timestamp(),
        }
        try:
            self.api.patch(path, {"spec": spec})
        except ApiError as exc:
            if exc.status != 404:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.node_name}
            owner["uid"] = self._node_uid
            self.api.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.node_name, "ownerReferences": [owner]},
                    "spec": spec,
                },
            )

    def _schedulable(self) -> bool:
        try:
            node = self.api.get(f"/api/v1/nodes/{self.node_name}")
        except ApiError:
            return False
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        taints = (node.get("spec") or {}).get("taints") or []
        blocked = any(t.get("effect") in ("NoSchedule", "NoExecute") for t in taints)
        return ready and not blocked

    def _heartbeat_loop(self) -> None:
        # It must outlive every failure, an API server that is away for a while included:
        # a node whose heartbeat has stopped is marked NotReady and tainted, and gets no
        # pods any more. A failed beat is tried again at the next period.
        while not self.stopping.wait(self.heartbeat_seconds):
            try:
                self._heartbeat()
            except ApiError as exc:
                log.warning("node %s: heartbeat failed: %s", self.node_name, exc)
            except Exception:
                log.exception("node %s: heartbeat failed", self.node_name)

    def _heartbeat(self) -> None:
        """Renew the Lease and post the status; register the Node again if it is gone."""
        try:
            self._renew_lease()
            self._post_status()
        except ApiError as exc:
            if exc.status != 404:
                raise
            self._register()

    # -- the pods -----------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        selector = f"spec.nodeName={self.node_name}"
        while not self.stopping.is_set():
            try:
                listed = self.api.get("/api/v1/pods", fieldSelector=selector)
                uids = set()
                for pod in listed["items"]:
                    uids.add(pod["metadata"]["uid"])
                    self._dispatch("MODIFIED", pod)
                with self._lock:
                    missing = [w for uid, w in self._workers.items() if uid not in uids]
                for worker in missing:
                    self._dispatch("DELETED", worker.pod)
                version = listed["metadata"]["resourceVersion"]
                while not self.stopping.is_set():
                    for event in self.api.watch(
                        "/api/v1/pods",
                        self.stopping,
                        fieldSelector=selector,
                        resourceVersion=version,
                        allowWatchBookmarks="true",
                    ):
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            raise ApiError(int(obj.get("code", 0)), str(obj.get("message")))
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self._dispatch(event["type"], obj)
            except ApiError as exc:
                if exc.status != 410:
                    log.warning("node %s: pod watch: %s", self.node_name, exc)
                    self.stopping.wait(1.0)
            except Exception:
                log.exception("node %s: pod watch failed", self.node_name)
                self.stopping.wait(1.0)

    def _dispatch(self, kind: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    del self._workers[uid]
                    worker.vanish()
                return
            if worker is None:
                if self.stopping.is_set():
                    return
                worker = self._workers[uid] = PodWorker(self, pod)
                worker.thread.start()
                return
        worker.update(pod)


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _pinned_k8s_version() -> str:
    pins = Path(__file__).with_name("versions.env").read_text()
    match = re.search(r"^K8S_VERSION=(\S+)", pins, re.MULTILINE)
    return match.group(1) if match else "v0.0.0"
