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

A container process gets a clean environment (never the harness's own ``KUBECONFIG``):
``POD_IP``, the container's ``env``/``envFrom`` (values, fieldRefs, ConfigMap and Secret
keys), and ``KUBECONFIG`` pointing at a per-pod kubeconfig holding a token that the
TokenRequest API issued for the pod's ServiceAccount, bound to the pod, so RBAC applies
to it as in a real cluster. Container output goes to ``<work_dir>/pods/<pod>/<container>.log``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import http.client
import ipaddress
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from tests.cluster import pki

log = logging.getLogger(__name__)

NODE_LABEL = "modelmonitor.io/local-node"
# Set in every container process; lets a later agent find processes an earlier,
# killed agent left behind (see reap_orphan_processes).
AGENT_PID_ENV = "MODELMONITOR_NODE_AGENT_PID"
DEFAULT_POD_CIDR = "10.244.0.0/16"
LOOPBACK_POD_CIDR = "127.1.0.0/16"
# The TokenRequest lifetime a kubelet asks for; the API server extends pod-bound
# tokens of exactly this lifetime to a year, so the per-pod kubeconfig never expires.
TOKEN_SECONDS = 3607
TICK_SECONDS = 0.2
EVENT_REPEAT_SECONDS = 30.0

Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- the API ---------------------------------------------------------------------------------


class ApiError(RuntimeError):
    """The API server answered a request with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class KubeApi:
    """Plain-dict requests to the API server with the credentials of a kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self._client: ApiClient = kube_config.new_client_from_config(
            config_file=str(kubeconfig), persist_config=False
        )

    def close(self) -> None:
        self._client.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Sequence[tuple[str, Any]] = (),
        content_type: str = "application/json",
        timeout: float | tuple[float, float] = 30.0,
    ) -> Any:
        try:
            return self._client.call_api(
                path,
                method,
                query_params=list(query),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as exc:
            message = exc.reason or ""
            with contextlib.suppress(ValueError, TypeError):
                message = json.loads(exc.body).get("message", message)
            raise ApiError(int(exc.status or 0), str(message)) from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Sequence[tuple[str, Any]] = (),
        content_type: str = "application/json",
    ) -> Obj:
        resp = self._call(method, path, body=body, query=query, content_type=content_type)
        data = resp.data
        return json.loads(data) if data else {}

    def get(self, path: str, **query: Any) -> Obj:
        return self.request("GET", path, query=list(query.items()))

    def create(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Obj) -> Obj:
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def delete(self, path: str, body: Obj | None = None) -> Obj:
        return self.request("DELETE", path, body=body)

    def watch(self, path: str, stop: threading.Event, **query: Any) -> Iterator[Obj]:
        """Yield watch events until the server ends the watch or ``stop`` is set."""
        seconds = int(query.setdefault("timeoutSeconds", 30))
        query["watch"] = "true"
        resp = self._call("GET", path, query=list(query.items()), timeout=(5.0, seconds + 10.0))
        try:
            buffer = b""
            for chunk in resp.stream(None, decode_content=False):
                if stop.is_set():
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            resp.release_conn()


def _pod_path(namespace: str, name: str, sub: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}{sub}"


# -- images ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerContext:
    """What an image runner gets to build a container's command line."""

    pod: Mapping[str, Any]
    container: Mapping[str, Any]
    pod_ip: str
    # The process's environment (before the runner's additions).
    env: Mapping[str, str]
    # The pod's own scratch directory (exists; shared by its containers).
    pod_dir: Path
    # ``command`` and ``args`` of the container, with $(VAR) references expanded and
    # paths under a volume's mountPath rewritten to the local copy.
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    # mountPath -> the local directory (or file, with subPath) standing in for it.
    mounts: Mapping[str, Path] = field(default_factory=dict)

    def expand(self, text: str) -> str:
        """Expand $(VAR) references against the container's environment."""
        return expand_vars(text, self.env)

    def local_path(self, text: str) -> str:
        """``text`` with paths under a volume's mountPath rewritten to the local copy."""
        return rewrite_mount_paths(text, self.mounts)

    def port(self, name: str) -> int:
        """The container port with this name."""
        for port in self.container.get("ports") or []:
            if port.get("name") == name:
                return int(port["containerPort"])
        raise KeyError(f"container {self.container.get('name')!r} has no port named {name!r}")


@dataclass(frozen=True)
class Launch:
    """How to start a container's process: its argv, working directory, extra env."""

    argv: Sequence[str]
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)


# Turns a container of a pod into the local command that plays its image.
ImageRunner = Callable[[ContainerContext], Launch]


@dataclass(frozen=True)
class LocalImage:
    """An image as a local command, with Docker's ENTRYPOINT/CMD rules.

    A container's ``command`` replaces ``entrypoint`` (and drops ``cmd``); its ``args``
    replace ``cmd``. $(VAR) references in ``entrypoint`` and ``cmd`` are expanded with the
    container's environment, so ``"--bind", "$(POD_IP)"`` binds to the pod's address.
    """

    entrypoint: Sequence[str]
    cmd: Sequence[str] = ()
    workdir: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, ctx: ContainerContext) -> Launch:
        if ctx.command:
            argv = [*ctx.command, *ctx.args]
        else:
            tail = ctx.args or tuple(ctx.expand(a) for a in self.cmd)
            argv = [*(ctx.expand(a) for a in self.entrypoint), *tail]
        return Launch(argv=argv, cwd=self.workdir, env=dict(self.env))


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known names are replaced, ``$$`` escapes, others stay."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _VAR.sub(replace, text)


# -- pod addresses ---------------------------------------------------------------------------


class PodNetwork:
    """Pod IPs from a /24 block of a locally routed CIDR, claimed with a lock file.

    The lock (under the system temp directory) keeps agents of concurrent test sessions
    on the same machine in separate blocks; it is released when the agent's process ends.
    ``routable`` is False for loopback addresses, which EndpointSlices may not contain.
    """

    def __init__(self, block: ipaddress.IPv4Network, lock: IO[str], *, routable: bool) -> None:
        self.block = block
        self.routable = routable
        self._lock = lock
        self._free = [str(ip) for ip in list(block.hosts())[1:]]  # .1 is the node's
        self._used: set[str] = set()
        self._mutex = threading.Lock()

    @classmethod
    def claim(cls, cidr: str | None = None) -> PodNetwork:
        """A block of ``cidr`` (default $MODELMONITOR_POD_CIDR or 10.244.0.0/16).

        The CIDR is routed to ``lo`` if it is not yet (needs CAP_NET_ADMIN); if that is
        impossible, or the CIDR is ``loopback``, the block comes from 127.1.0.0/16.
        """
        wanted = cidr or os.environ.get("MODELMONITOR_POD_CIDR") or DEFAULT_POD_CIDR
        if wanted != "loopback":
            network = ipaddress.IPv4Network(wanted)
            problem = ensure_local_route(network)
            if problem is None:
                return cls._claim_block(network, routable=not network.is_loopback)
            log.warning(
                "pod network %s unavailable (%s); pods get loopback addresses, which "
                "EndpointSlices cannot hold",
                network,
                problem,
            )
        return cls._claim_block(ipaddress.IPv4Network(LOOPBACK_POD_CIDR), routable=False)

    @classmethod
    def _claim_block(cls, network: ipaddress.IPv4Network, *, routable: bool) -> PodNetwork:
        lock_dir = Path(tempfile.gettempdir()) / "modelmonitor-podnet"
        lock_dir.mkdir(exist_ok=True)
        for index, block in enumerate(network.subnets(new_prefix=24)):
            if index == 0:
                continue
            handle = open(lock_dir / f"{block.network_address}.lock", "w")  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return cls(block, handle, routable=routable)
        raise RuntimeError(f"every /24 block of {network} is claimed by another agent")

    @property
    def gateway(self) -> str:
        return str(self.block.network_address + 1)

    def allocate(self) -> str:
        """The least recently released free address."""
        with self._mutex:
            if not self._free:
                raise RuntimeError(f"pod network {self.block} is exhausted")
            ip = self._free.pop(0)
            self._used.add(ip)
            return ip

    def release(self, ip: str) -> None:
        with self._mutex:
            if ip in self._used:
                self._used.discard(ip)
                self._free.append(ip)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


def ensure_local_route(network: ipaddress.IPv4Network) -> str | None:
    """Route ``network`` to the loopback interface; None when done, else why not."""
    if network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
        return None
    ip_tool = shutil.which("ip")
    if ip_tool is None:
        return "the `ip` command is missing"

    def routes() -> list[str]:
        out = subprocess.run(
            [ip_tool, "-4", "route", "show", "table", "all"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.splitlines()

    route_types = {"local", "broadcast", "unicast", "anycast", "multicast", "blackhole"}
    route_types |= {"unreachable", "prohibit", "throw", "nat"}
    for line in routes():
        words = line.split()
        if len(words) >= 4 and words[:2] == ["local", str(network)] and "lo" in words:
            return None
        if words and words[0] in route_types:
            words = words[1:]
        if not words:
            continue
        destination = words[0]
        with contextlib.suppress(ValueError):
            if destination != "default" and ipaddress.IPv4Network(
                destination, strict=False
            ).overlaps(network):
                return f"it overlaps the existing route {line.strip()!r}"
    added = subprocess.run(
        [ip_tool, "route", "add", "local", str(network), "dev", "lo", "table", "local"],
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode == 0 or "File exists" in added.stderr:
        return None
    return f"`ip route add local {network} dev lo` failed: {added.stderr.strip()}"


# -- the environment of a container ----------------------------------------------------------


class ConfigError(RuntimeError):
    """A container's configuration cannot be resolved (CreateContainerConfigError)."""


def _field_value(pod: Mapping[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if keyed:
        return str((meta.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    raise ConfigError(f"fieldRef {path!r} is not supported by the node agent")


class _RefReader:
    """Reads ConfigMap and Secret keys for env, once per object per container start."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self._api = api
        self._namespace = namespace
        self._cache: dict[tuple[str, str], dict[str, str] | None] = {}

    def data(self, kind: str, name: str) -> dict[str, str] | None:
        key = (kind, name)
        if key not in self._cache:
            plural = "secrets" if kind == "Secret" else "configmaps"
            try:
                obj = self._api.get(f"/api/v1/namespaces/{self._namespace}/{plural}/{name}")
            except ApiError as exc:
                if exc.status != 404:
                    raise ConfigError(f"reading {kind} {name}: {exc}") from exc
                self._cache[key] = None
            else:
                raw = obj.get("data") or {}
                if kind == "Secret":
                    raw = {k: base64.b64decode(v).decode() for k, v in raw.items()}
                self._cache[key] = dict(raw)
        return self._cache[key]

    def value(self, kind: str, ref: Mapping[str, Any]) -> str | None:
        data = self.data(kind, ref["name"])
        if data is not None and ref["key"] in data:
            return data[ref["key"]]
        if ref.get("optional"):
            return None
        missing = "not found" if data is None else f"has no key {ref['key']!r}"
        raise ConfigError(f"{kind} {ref['name']!r} {missing}")


def container_env(
    api: KubeApi,
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    base: Mapping[str, str],
    pod_ip: str,
    host_ip: str,
) -> dict[str, str]:
    """``base`` plus the container's envFrom and env, resolved as a kubelet does."""
    namespace = pod["metadata"]["namespace"]
    refs = _RefReader(api, namespace)
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if ref is None:
                continue
            data = refs.data(kind, ref["name"])
            if data is None and not ref.get("optional"):
                raise ConfigError(f"{kind} {ref['name']!r} not found")
            env.update({prefix + k: v for k, v in (data or {}).items()})
    for var in container.get("env") or []:
        source = var.get("valueFrom")
        value: str | None
        if source is None:
            value = expand_vars(var.get("value", ""), env)
        elif "fieldRef" in source:
            value = _field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "secretKeyRef" in source:
            value = refs.value("Secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = refs.value("ConfigMap", source["configMapKeyRef"])
        else:
            raise ConfigError(f"env {var['name']}: {sorted(source)} is not supported")
        if value is not None:
            env[var["name"]] = value
    return env


# -- volumes ---------------------------------------------------------------------------------


def _write_files(
    directory: Path,
    data: Mapping[str, str],
    items: Sequence[Mapping[str, Any]] | None,
    mode: int,
    *,
    optional: bool = False,
) -> None:
    """Files of a ConfigMap or Secret volume: every key, or just ``items`` (key -> path)."""
    chosen = [(i["key"], i["path"], i.get("mode", mode)) for i in items or []]
    if items is None:
        chosen = [(key, key, mode) for key in data]
    for key, relative, file_mode in chosen:
        if key not in data:
            if optional:
                continue
            raise ConfigError(f"key {key!r} not found")
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data[key])
        path.chmod(file_mode)


def materialize_volumes(
    pod: Mapping[str, Any],
    root: Path,
    refs: _RefReader,
    token: Callable[[], str],
    *,
    pod_ip: str,
    host_ip: str,
) -> dict[str, Path]:
    """Write the pod's volumes under ``root``; return volume name -> local path.

    Supported: emptyDir, configMap, secret, downwardAPI (fieldRef), hostPath (used in
    place), and projected volumes of those plus serviceAccountToken (the pod's token).
    """

    def source_files(directory: Path, kind: str, source: Mapping[str, Any]) -> None:
        if kind in ("configMap", "secret"):
            name = source.get("name") or source.get("secretName", "")
            data = refs.data("ConfigMap" if kind == "configMap" else "Secret", name)
            if data is None:
                if source.get("optional"):
                    return
                raise ConfigError(f"{kind} {name!r} not found")
            mode = int(source.get("defaultMode", 0o644))
            _write_files(
                directory, data, source.get("items"), mode, optional=bool(source.get("optional"))
            )
        elif kind == "downwardAPI":
            values = {
                item["path"]: _field_value(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip)
                for item in source.get("items") or []
                if "fieldRef" in item
            }
            _write_files(directory, values, None, int(source.get("defaultMode", 0o644)))
        elif kind == "serviceAccountToken":
            path = directory / source.get("path", "token")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(token())
            path.chmod(0o600)
        else:
            raise ConfigError(f"volume source {kind!r} is not supported by the node agent")

    local: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "hostPath" in volume:
            local[name] = Path(volume["hostPath"]["path"])
            continue
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        local[name] = directory
        if "emptyDir" in volume:
            continue
        if "projected" in volume:
            for projection in volume["projected"].get("sources") or []:
                for kind, source in projection.items():
                    source_files(directory, kind, source)
            continue
        kinds = [k for k in volume if k != "name"]
        if not kinds:
            raise ConfigError(f"volume {name!r} has no source")
        source_files(directory, kinds[0], volume[kinds[0]])
    return local


def container_mounts(container: Mapping[str, Any], volumes: Mapping[str, Path]) -> dict[str, Path]:
    """mountPath -> local path for a container's volumeMounts."""
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volumes:
            raise ConfigError(f"volumeMount {mount['name']!r}: no such volume")
        path = volumes[mount["name"]]
        if mount.get("subPath"):
            path = path / mount["subPath"]
        mounts[mount["mountPath"].rstrip("/") or "/"] = path
    return mounts


def rewrite_mount_paths(text: str, mounts: Mapping[str, Path]) -> str:
    """Replace each path under a mountPath in ``text`` with the local path."""
    if not mounts:
        return text
    ordered = sorted(mounts, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![\w.-])(" + "|".join(re.escape(m) for m in ordered) + r")(?=/|$|[^\w.-])"
    )
    return pattern.sub(lambda match: str(mounts[match.group(1)]), text)


# -- probes ----------------------------------------------------------------------------------


class _Prober:
    """One probe of one container: its schedule, thresholds and current verdict."""

    def __init__(self, spec: Mapping[str, Any], kind: str, *, initial: bool) -> None:
        self.spec = spec
        self.kind = kind
        self.period = float(spec.get("periodSeconds", 10))
        self.timeout = float(spec.get("timeoutSeconds", 1))
        self.success_threshold = int(spec.get("successThreshold", 1))
        self.failure_threshold = int(spec.get("failureThreshold", 3))
        self.delay = float(spec.get("initialDelaySeconds", 0))
        self.ok = initial
        self._next = 0.0
        self._successes = 0
        self._failures = 0
        self.last_error = ""

    def reset(self, started: float) -> None:
        self._next = started + self.delay
        self._successes = self._failures = 0

    def due(self, now: float) -> bool:
        return now >= self._next

    @property
    def failed(self) -> bool:
        """failureThreshold failures in a row (a startup probe starts not ok, not failed)."""
        return self._failures >= self.failure_threshold

    def record(self, now: float, error: str | None) -> bool:
        """Record a result; True when the verdict changed."""
        self._next = now + self.period
        before = self.ok
        if error is None:
            self._successes += 1
            self._failures = 0
            if self._successes >= self.success_threshold:
                self.ok = True
        else:
            self.last_error = error
            self._failures += 1
            self._successes = 0
            if self._failures >= self.failure_threshold:
                self.ok = False
        return self.ok != before


def run_probe(
    spec: Mapping[str, Any],
    *,
    pod_ip: str,
    ports: Mapping[str, int],
    env: Mapping[str, str],
    cwd: Path | None,
) -> str | None:
    """Run one probe; None on success, else what failed."""
    timeout = float(spec.get("timeoutSeconds", 1))

    def port_of(value: Any) -> int:
        return ports[value] if isinstance(value, str) and not value.isdigit() else int(value)

    try:
        if "httpGet" in spec:
            get = spec["httpGet"]
            host = get.get("host") or pod_ip
            connection: http.client.HTTPConnection
            if get.get("scheme", "HTTP").upper() == "HTTPS":
                connection = http.client.HTTPSConnection(
                    host,
                    port_of(get["port"]),
                    timeout=timeout,
                    context=ssl._create_unverified_context(),  # a kubelet does not verify either
                )
            else:
                connection = http.client.HTTPConnection(host, port_of(get["port"]), timeout=timeout)
            try:
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                connection.request("GET", get.get("path", "/"), headers=headers)
                status = connection.getresponse().status
            finally:
                connection.close()
            return None if 200 <= status < 400 else f"HTTP probe failed with statuscode: {status}"
        if "tcpSocket" in spec:
            tcp = spec["tcpSocket"]
            with socket.create_connection(
                (tcp.get("host") or pod_ip, port_of(tcp["port"])), timeout=timeout
            ):
                return None
        if "exec" in spec:
            done = subprocess.run(
                spec["exec"]["command"],
                env=dict(env),
                cwd=cwd,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            return None if done.returncode == 0 else f"exec probe exited {done.returncode}"
    except (
        OSError,
        KeyError,
        ValueError,
        subprocess.TimeoutExpired,
        http.client.HTTPException,
    ) as exc:
        return f"probe failed: {exc}"
    return f"probe type {sorted(spec)} is not supported by the node agent"


# -- containers ------------------------------------------------------------------------------


@dataclass
class Backoff:
    """Restart delays: ``base`` doubled per consecutive crash, capped at ``cap``.

    A kubelet waits 10 s doubling to 5 min; tests want seconds.
    """

    base: float = 1.0
    cap: float = 10.0
    # A container that ran this long before exiting starts over at ``base``.
    reset_after: float = 60.0

    def delay(self, crashes: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(crashes - 1, 0)))


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class _Container:
    """The runtime state of one container of a pod: its process, restarts and probes."""

    def __init__(self, spec: Mapping[str, Any], log_path: Path, *, init: bool = False) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.image: str = spec.get("image", "")
        self.init = init
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = ""
        self._started_mono = 0.0
        self.restart_count = 0
        self.crashes = 0
        self.ran_seconds = 0.0
        # Per start: where its marker line and then its output begin in the log file.
        self.runs: list[tuple[int, int]] = []
        self.waiting: tuple[str, str] | None = ("ContainerCreating", "")
        self.running_state: Obj | None = None
        self.terminated: Obj | None = None  # the current state when it stays terminated
        self.last_terminated: Obj | None = None
        self.done = False  # exited and will not be restarted
        self.next_start = 0.0
        self.env: dict[str, str] = {}
        self.cwd: Path | None = None
        self.ports = {
            p["name"]: int(p["containerPort"]) for p in spec.get("ports") or [] if p.get("name")
        }
        self.startup = self._prober("startupProbe", initial=False)
        self.readiness = self._prober("readinessProbe", initial=False)
        self.liveness = self._prober("livenessProbe", initial=True)

    def _prober(self, key: str, *, initial: bool) -> _Prober | None:
        spec = None if self.init else self.spec.get(key)
        return _Prober(spec, key, initial=initial) if spec else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def started(self) -> bool:
        return self.running and (self.startup is None or self.startup.ok)

    @property
    def ready(self) -> bool:
        if not self.started or self.init:
            return False
        return self.readiness is None or self.readiness.ok

    def start(self, launch: Launch, env: dict[str, str], agent_pid: int) -> None:
        argv = [str(a) for a in launch.argv]
        self.env = {**env, **launch.env, AGENT_PID_ENV: str(agent_pid)}
        self.cwd = launch.cwd
        if self.proc is not None:
            self.restart_count += 1
        with open(self.log_path, "ab") as out:
            marker = out.tell()
            out.write(
                f"==> node agent: starting {self.name} (restart {self.restart_count}): "
                f"{' '.join(argv)}\n".encode()
            )
            out.flush()
            self.runs.append((marker, out.tell()))
            self.proc = subprocess.Popen(
                argv,
                cwd=launch.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._started_mono = time.monotonic()
        self.started_at = _now()
        self.waiting = None
        self.terminated = None
        self.running_state = {"startedAt": self.started_at}
        for prober in (self.startup, self.readiness, self.liveness):
            if prober is not None:
                prober.reset(self._started_mono)
                prober.ok = prober is self.liveness

    def exited(self) -> int | None:
        """The exit code if the process ended since the last call (its group is killed)."""
        if self.proc is None or self.running_state is None:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        # Whatever it left behind in its process group goes with it.
        _signal_group(self.proc.pid, signal.SIGKILL)
        exit_code = 128 - code if code < 0 else code
        state = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": self.started_at,
            "finishedAt": _now(),
            "containerID": self.container_id,
        }
        if code < 0:
            state["signal"] = -code
        self.running_state = None
        self.ran_seconds = time.monotonic() - self._started_mono
        self.terminated = state
        return exit_code

    def stop(self, grace: float) -> None:
        """SIGTERM its process group, SIGKILL after ``grace`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        _signal_group(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        _signal_group(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def output(self, *, previous: bool = False) -> bytes | None:
        """The output of the current (or the previous) run; None if there is none."""
        index = -2 if previous else -1
        if len(self.runs) < -index:
            return None
        start = self.runs[index][1]
        end = self.runs[-1][0] if previous else None
        with open(self.log_path, "rb") as log_file:
            log_file.seek(start)
            return log_file.read() if end is None else log_file.read(end - start)

    @property
    def container_id(self) -> str:
        return f"local://{self.proc.pid}" if self.proc is not None else ""

    def status(self) -> Obj:
        state: Obj
        if self.running_state is not None:
            state = {"running": self.running_state}
        elif self.waiting is not None:
            reason, message = self.waiting
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        status: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": f"local://{self.image}",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.proc is not None:
            status["containerID"] = self.container_id
        return status


# -- pods ------------------------------------------------------------------------------------

TERMINAL_PHASES = ("Succeeded", "Failed")


def pod_phase(restart_policy: str, init: Sequence[_Container], main: Sequence[_Container]) -> str:
    """The pod phase from its containers' states, by the kubelet's rules."""
    for container in init:
        if not container.done:
            return "Pending"
        if (container.terminated or {}).get("exitCode", 0) != 0:
            return "Failed"
    running = waiting = succeeded = failed = restarting = 0
    for container in main:
        if container.running_state is not None:
            running += 1
        elif container.done:
            if (container.terminated or {}).get("exitCode", 0) == 0:
                succeeded += 1
            else:
                failed += 1
        elif container.last_terminated is not None or container.terminated is not None:
            restarting += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running or restarting:
        return "Running"
    if restart_policy == "Always":
        return "Running"
    return "Failed" if failed else "Succeeded"


class _PodWorker:
    """Runs one pod's containers and reports its status, in a thread of its own.

    It is the only writer of its pod's status. The agent hands it the newest pod
    object from the watch (:meth:`update`) and tells it when the pod is gone.
    """

    def __init__(self, agent: NodeAgent, pod: Obj) -> None:
        meta = pod["metadata"]
        self.agent = agent
        self.pod = pod
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.dir = agent.pods_dir / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.init = [
            _Container(c, self.dir / f"{c['name']}.log", init=True)
            for c in spec.get("initContainers") or []
        ]
        self.main = [_Container(c, self.dir / f"{c['name']}.log") for c in spec["containers"]]
        self.ip = ""
        self.gone = False
        self._wake = threading.Event()
        # Set up once, before the first container starts (retried each second on error).
        self._credentials: dict[str, str] | None = None
        self._volumes: dict[str, Path] | None = None
        self._token_value = ""
        self._config_error = ""
        self._retry_setup = 0.0
        self._conditions: dict[str, Obj] = {
            c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []
        }
        self._start_time = (pod.get("status") or {}).get("startTime") or _now()
        self._written: Obj | None = None
        self._warned: set[str] = set()
        self.thread = threading.Thread(
            target=self._run, name=f"pod {self.namespace}/{self.name}", daemon=True
        )

    # -- inputs -------------------------------------------------------------------------------
    def update(self, pod: Obj) -> None:
        self.pod = pod
        self._wake.set()

    def vanish(self) -> None:
        self.gone = True
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    @property
    def _deleting(self) -> bool:
        return bool(self.pod["metadata"].get("deletionTimestamp"))

    @property
    def _grace(self) -> float:
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(grace)

    # -- the loop -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if (self.pod.get("status") or {}).get("phase") not in TERMINAL_PHASES:
                self._live()
                self._release_ip()
            self._idle_until_deleted()
        except Exception:
            log.exception("pod %s/%s: worker failed", self.namespace, self.name)
        finally:
            self._stop_containers(0)
            self._release_ip()

    def _release_ip(self) -> None:
        if self.ip:
            self.agent.network.release(self.ip)
            self.ip = ""

    def _live(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("home", "tmp"):
            (self.dir / sub).mkdir(exist_ok=True)
        self.ip = self.agent.network.allocate()
        while True:
            if self.gone or self.agent.stopping.is_set():
                self._stop_containers(min(self._grace, self.agent.stop_grace))
                return
            if self._deleting:
                self._stop_containers(self._grace)
                self._poll_exits(time.monotonic())
                self._write_status(final=True)
                return
            self._step(time.monotonic())
            phase, written = self._write_status()
            if phase in TERMINAL_PHASES and written:
                self._stop_containers(0)
                return
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()

    def _idle_until_deleted(self) -> None:
        deleted = False
        while not (self.gone or self.agent.stopping.is_set()):
            if self._deleting and not deleted:
                deleted = self._delete()
            self._wake.wait(5.0)
            self._wake.clear()

    def _delete(self) -> bool:
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
        try:
            self.agent.api.delete(_pod_path(self.namespace, self.name), body)
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("pod %s/%s: delete failed: %s", self.namespace, self.name, exc)
                return False
        return True

    # -- containers ---------------------------------------------------------------------------
    def _step(self, now: float) -> None:
        self._poll_exits(now)
        for container in self.init:
            if not container.done:
                self._drive(container, now)
                return
        for container in self.main:
            self._drive(container, now)

    def _poll_exits(self, now: float) -> None:
        for container in (*self.init, *self.main):
            code = container.exited()
            if code is None:
                continue
            container.crashes = (
                1
                if container.ran_seconds > self.agent.backoff.reset_after
                else container.crashes + 1
            )
            if self._restarts(container, code) and not self._deleting:
                delay = self.agent.backoff.delay(container.crashes)
                container.last_terminated, container.terminated = container.terminated, None
                container.waiting = (
                    "CrashLoopBackOff",
                    f"back-off {delay:g}s restarting failed container={container.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})",
                )
                container.next_start = now + delay
                self.agent.event(self.pod, "Warning", "BackOff", container.waiting[1], container)
            else:
                container.done = True

    def _restarts(self, container: _Container, code: int) -> bool:
        if self.restart_policy == "Never":
            return False
        if container.init or self.restart_policy == "OnFailure":
            return code != 0
        return True

    def _drive(self, container: _Container, now: float) -> None:
        if container.running:
            self._probe(container, now)
        elif not container.done and container.running_state is None and now >= container.next_start:
            self._start(container, now)

    def _start(self, container: _Container, now: float) -> None:
        def wait(reason: str, message: str) -> None:
            container.waiting = (reason, message)
            container.next_start = now + 1.0
            if f"{container.name}/{reason}" not in self._warned:
                self._warned.add(f"{container.name}/{reason}")
                self.agent.event(self.pod, "Warning", reason, message, container)

        runner = self.agent.image_runner(container.image)
        if runner is None:
            known = ", ".join(sorted(self.agent.images)) or "none"
            return wait(
                "ImageNotKnown",
                f"image {container.image!r} is not registered with the node agent "
                f"(NodeAgent.register_image); known images: {known}",
            )
        if not self._set_up(now):
            return wait("CreateContainerConfigError", self._config_error)
        base = self._base_env()
        try:
            mounts = container_mounts(container.spec, self._volumes or {})
            declared = container_env(
                self.agent.api,
                self.pod,
                container.spec,
                base=base,
                pod_ip=self.ip,
                host_ip=self.agent.host_ip,
            )
        except (ConfigError, ApiError) as exc:
            return wait("CreateContainerConfigError", str(exc))
        env = {
            k: v if base.get(k) == v else rewrite_mount_paths(v, mounts)
            for k, v in declared.items()
        }

        def line(words: Sequence[str] | None) -> tuple[str, ...]:
            return tuple(rewrite_mount_paths(expand_vars(w, env), mounts) for w in words or ())

        ctx = ContainerContext(
            pod=self.pod,
            container=container.spec,
            pod_ip=self.ip,
            env=env,
            pod_dir=self.dir,
            command=line(container.spec.get("command")),
            args=line(container.spec.get("args")),
            mounts=mounts,
        )
        try:
            container.start(runner(ctx), env, os.getpid())
        except Exception as exc:
            return wait("RunContainerError", f"{type(exc).__name__}: {exc}")
        self.agent.event(
            self.pod, "Normal", "Started", f"Started container {container.name}", container
        )

    def _probe(self, container: _Container, now: float) -> None:
        startup = container.startup
        order = [startup] if startup is not None and not startup.ok else []
        if startup is None or startup.ok:
            order = [p for p in (container.liveness, container.readiness) if p is not None]
        for prober in order:
            if not prober.due(now):
                continue
            error = run_probe(
                prober.spec,
                pod_ip=self.ip,
                ports=container.ports,
                env=container.env,
                cwd=container.cwd,
            )
            prober.record(time.monotonic(), error)
            if error is not None:
                self.agent.event(
                    self.pod, "Warning", "Unhealthy", f"{prober.kind} failed: {error}", container
                )
            if prober.failed and prober is not container.readiness:
                message = f"Container {container.name} failed {prober.kind}, will be restarted"
                self.agent.event(self.pod, "Normal", "Killing", message, container)
                container.stop(float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)))
                return

    def _stop_containers(self, grace: float) -> None:
        running = [c for c in (*self.init, *self.main) if c.running]
        if not running:
            return
        for container in running:
            self.agent.event(
                self.pod, "Normal", "Killing", f"Stopping container {container.name}", container
            )
            _signal_group(container.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        while any(c.running for c in running) and time.monotonic() < deadline:
            time.sleep(0.05)
        for container in running:
            container.stop(0)

    # -- environment and credentials ----------------------------------------------------------
    def _base_env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.dir / "home"),
            "TMPDIR": str(self.dir / "tmp"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "HOSTNAME": self.pod["spec"].get("hostname") or self.name,
            "POD_IP": self.ip,
        }
        if self._credentials:
            env.update(self._credentials)
        return env

    def _set_up(self, now: float) -> bool:
        """Credentials and volumes, once per pod; False (with _config_error) on failure."""
        if self._credentials is not None and self._volumes is not None:
            return True
        if now < self._retry_setup:
            return False
        try:
            if self._credentials is None:
                self._credentials = self._credentials_env()
            self._volumes = materialize_volumes(
                self.pod,
                self.dir / "volumes",
                _RefReader(self.agent.api, self.namespace),
                self._token,
                pod_ip=self.ip,
                host_ip=self.agent.host_ip,
            )
        except (ConfigError, ApiError, KeyError, OSError) as exc:
            self._config_error = str(exc)
            self._retry_setup = now + 1.0
            return False
        return True

    def _token(self) -> str:
        """A token of the pod's ServiceAccount, bound to the pod (TokenRequest API)."""
        if not self._token_value:
            account = self.pod["spec"].get("serviceAccountName") or "default"
            path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token"
            bound = {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}
            request = {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": TOKEN_SECONDS, "boundObjectRef": bound},
            }
            try:
                self._token_value = self.agent.api.create(path, request)["status"]["token"]
            except (ApiError, KeyError) as exc:
                raise ConfigError(
                    f"ServiceAccount {account!r}: cannot issue a token: {exc}"
                ) from exc
        return self._token_value

    def _credentials_env(self) -> dict[str, str]:
        """KUBECONFIG: the pod's own kubeconfig with its token, unless automount is off."""
        spec = self.pod["spec"]
        account = spec.get("serviceAccountName") or "default"
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            sa_path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}"
            automount = self.agent.api.get(sa_path).get("automountServiceAccountToken", True)
        if not automount:
            return {}
        kubeconfig = self.agent.pod_kubeconfig(account, self.namespace, self._token())
        path = self.dir / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig))
        path.chmod(0o600)
        return {"KUBECONFIG": str(path)}

    # -- status -------------------------------------------------------------------------------
    def _condition(self, kind: str, ok: bool, reason: str = "") -> Obj:
        status = "True" if ok else "False"
        old = self._conditions.get(kind)
        if old is not None and old.get("status") == status:
            since = old.get("lastTransitionTime") or _now()
        else:
            since = _now()
        condition: Obj = {"type": kind, "status": status, "lastTransitionTime": since}
        if reason and not ok:
            condition["reason"] = reason
        self._conditions[kind] = condition
        return condition

    def _write_status(self, *, final: bool = False) -> tuple[str, bool]:
        """Report the pod's status if it changed; return the phase and whether the API
        has it."""
        phase = pod_phase(self.restart_policy, self.init, self.main)
        if final and phase not in TERMINAL_PHASES:
            for container in (*self.init, *self.main):
                container.done = container.done or container.terminated is not None
            ok = all((c.terminated or {}).get("exitCode", 1) == 0 for c in self.main)
            phase = "Succeeded" if ok else "Failed"
        terminal = phase in TERMINAL_PHASES
        initialized = all(c.done for c in self.init)
        containers_ready = not terminal and all(c.ready for c in self.main)
        gates = [g["conditionType"] for g in self.pod["spec"].get("readinessGates") or []]
        current = {
            c["type"]: c.get("status")
            for c in (self.pod.get("status") or {}).get("conditions") or []
        }
        gates_ok = all(current.get(gate) == "True" for gate in gates)
        not_ready = "PodCompleted" if terminal else "ContainersNotReady"
        ours = [
            self._condition("PodReadyToStartContainers", not terminal),
            self._condition("Initialized", initialized, "ContainersNotInitialized"),
            self._condition("ContainersReady", containers_ready, not_ready),
            self._condition("Ready", containers_ready and gates_ok, not_ready),
            self._condition("PodScheduled", True),
        ]
        names = {c["type"] for c in ours}
        others = [
            c
            for c in (self.pod.get("status") or {}).get("conditions") or []
            if c["type"] not in names
        ]
        status: Obj = {
            "phase": phase,
            "hostIP": self.agent.host_ip,
            "hostIPs": [{"ip": self.agent.host_ip}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self._start_time,
            "conditions": others + ours,
            "containerStatuses": [c.status() for c in self.main],
        }
        if self.init:
            status["initContainerStatuses"] = [c.status() for c in self.init]
        if status != self._written:
            try:
                self.agent.api.patch(
                    _pod_path(self.namespace, self.name, "/status"),
                    {"metadata": {"uid": self.uid}, "status": status},
                )
                self._written = status
            except ApiError as exc:
                if exc.status == 404:
                    self.gone = True
                else:
                    log.warning(
                        "pod %s/%s: status update failed: %s", self.namespace, self.name, exc
                    )
        return phase, status == self._written


# -- the kubelet API: container logs ---------------------------------------------------------


class _LogServer(ThreadingHTTPServer):
    """The part of a kubelet's HTTPS API that ``kubectl logs`` reaches through the API
    server: ``GET /containerLogs/<namespace>/<pod>/<container>``. The API server does
    not verify a kubelet's certificate unless told to, so a self-signed one serves."""

    daemon_threads = True

    def __init__(self, agent: NodeAgent, host: str, cert: pki.KeyPair) -> None:
        self.agent = agent
        super().__init__((host, 0), _LogHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert.cert), str(cert.key))
        self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _LogHandler(BaseHTTPRequestHandler):
    server: _LogServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubelet API: " + format, *args)

    def _reply(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if parts == ["healthz"]:
            return self._reply(200, "ok")
        if len(parts) != 4 or parts[0] != "containerLogs":
            return self._reply(404, f"{url.path}: the node agent serves only /containerLogs")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        container = self.server.agent.find_container(parts[1], parts[2], parts[3])
        if container is None:
            return self._reply(404, f"container {parts[3]!r} of pod {parts[1]}/{parts[2]} unknown")
        previous = query.get("previous") == "true"
        data = container.output(previous=previous)
        if data is None:
            what = "previous terminated container" if previous else "container"
            return self._reply(400, f"{what} {container.name!r} has not run yet")
        if "tailLines" in query:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[len(lines) - min(len(lines), int(query["tailLines"])) :])
        if "limitBytes" in query:
            data = data[: int(query["limitBytes"])]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        try:
            self.wfile.write(data)
            if query.get("follow") == "true" and not previous:
                self._follow(container, container.runs[-1][1] + len(data))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def _follow(self, container: _Container, offset: int) -> None:
        """Stream new output until the container stops (or the node does)."""
        run = len(container.runs)
        with open(container.log_path, "rb") as log_file:
            log_file.seek(offset)
            while True:
                alive = container.running and len(container.runs) == run
                chunk = log_file.read(65536)
                if chunk:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                elif not alive or self.server.agent.stopping.is_set():
                    return
                else:
                    time.sleep(0.2)


# -- the node --------------------------------------------------------------------------------


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
        self._workers: dict[str, _PodWorker] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._node_uid = ""
        self._since = _now()
        self._cluster = _cluster_entry(self.kubeconfig)
        self._log_server: _LogServer | None = None
        self._warned_at: dict[tuple[str, str, str], float] = {}

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
        self._log_server = _LogServer(self, self.host_ip, pki.create_ca(cert_dir, self.node_name))
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

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _log_server_port(self) -> int:
        return self._log_server.port if self._log_server is not None else 0

    def find_container(self, namespace: str, pod: str, name: str) -> _Container | None:
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
        container: _Container | None = None,
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
        stamp = _now()
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
        now = _now()

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
            "renewTime": _now_micro(),
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
        while not self.stopping.wait(self.heartbeat_seconds):
            try:
                self._renew_lease()
                self._post_status()
            except ApiError as exc:
                if exc.status == 404:
                    with contextlib.suppress(ApiError, OSError):
                        self._register()
                else:
                    log.warning("node %s: heartbeat failed: %s", self.node_name, exc)
            except OSError as exc:
                log.warning("node %s: heartbeat failed: %s", self.node_name, exc)

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
                worker = self._workers[uid] = _PodWorker(self, pod)
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
