"""A real Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, started from the binaries that
build.sh builds and caches.

Each cluster has a name and a state directory (``<repo>/.state/cluster/<name>/``,
or ``$MODELMONITOR_CLUSTER_DIR/<name>/``) holding its certificates, kubeconfigs,
etcd data, ``logs/<component>.log`` and ``cluster.json`` (ports, pids). Ports are
picked free at start, so clusters with different names run side by side.
``up`` and ``down`` are idempotent.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from tests.cluster import pki
from tests.cluster.binaries import ensure_binaries
from tests.cluster.state import (
    COMPONENTS,
    STATE_FILE,
    ClusterError,
    ClusterState,
    Ports,
    PortTakenError,
    Status,
    default_state_root,
)

SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


START_ATTEMPTS = 3


def _pid_alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs and its command line mentions ``marker`` (our state dir).

    The marker check keeps a recycled pid from being taken for one of ours.
    """
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    process_state = stat.rsplit(")", 1)[-1].split()[0]
    return process_state not in ("Z", "X") and marker in cmdline


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


class ControlPlane:
    """One named local control plane."""

    def __init__(
        self,
        name: str = "default",
        *,
        state_root: Path | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid cluster name {name!r}")
        self.name = name
        self.state_root = (state_root or default_state_root()).resolve()
        self.state_dir = self.state_root / name
        self._bin_dir = bin_dir
        # Processes this Python process started: reaped on stop so none lingers as a zombie.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- paths ------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def log_file(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    # -- public API -------------------------------------------------------------------------
    def load_state(self, *, stopped: bool = False) -> ClusterState | None:
        """The recorded state; with ``stopped``, that of a cluster stopped with ``keep``."""
        path = self.state_dir / f"{STATE_FILE}.stopped" if stopped else self._state_file
        try:
            return ClusterState.from_json(path.read_text())
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def status(self) -> Status:
        state = self.load_state()
        if state is None:
            return Status(self.name, self.state_dir)
        running = {c: _pid_alive(pid, str(self.state_dir)) for c, pid in state.pids.items()}
        ready = running.get("kube-apiserver", False) and self._apiserver_ready(state.server)
        return Status(self.name, self.state_dir, running, ready, state)

    def up(self, *, timeout: float = 120.0, owner_pid: int | None = None) -> ClusterState:
        """Start the cluster, or return the running one with this name.

        ``owner_pid`` marks the cluster as belonging to that process, so that
        :func:`reap_orphans` can stop it once the owner is gone.
        """
        with self._lock():
            current = self.status()
            if current.state is not None and current.all_running:
                # Running: wait for it to answer (a busy apiserver may be slow to
                # say ready) rather than replace it under its users' feet.
                state = current.state
                self._wait(
                    "kube-apiserver",
                    state.pids,
                    time.monotonic() + timeout,
                    lambda: self._apiserver_ready(state.server),
                )
                return state
            if current.state is not None or self.state_dir.exists():
                self._stop(current.state)
                shutil.rmtree(self.state_dir, ignore_errors=True)
            for attempt in range(1, START_ATTEMPTS + 1):
                try:
                    return self._start(timeout=timeout, owner_pid=owner_pid)
                except PortTakenError:
                    if attempt == START_ATTEMPTS:
                        raise
                    shutil.rmtree(self.state_dir, ignore_errors=True)
            raise AssertionError("unreachable")

    def down(self, *, keep: bool = False) -> bool:
        """Stop the cluster; remove its state unless ``keep``. True if something ran."""
        with self._lock():
            state = self.load_state()
            was_running = state is not None and any(
                _pid_alive(pid, str(self.state_dir)) for pid in state.pids.values()
            )
            self._stop(state)
            if keep:
                with contextlib.suppress(FileNotFoundError):
                    self._state_file.rename(self.state_dir / f"{STATE_FILE}.stopped")
            else:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            return was_running

    @contextlib.contextmanager
    def stopped(self, *components: str, timeout: float = 120.0) -> Iterator[None]:
        """Stop some components for the ``with`` block, then start them again as they
        ran before (their command lines: the same ports, certificates and data), in start
        order, each waited for until healthy; the other components go on running.

        The cluster's lock is held throughout, so that no ``up`` takes the cluster for a
        broken one and starts it afresh meanwhile (so the block must not call ``up``).
        """
        with self._lock():
            state = self.load_state()
            if state is None:
                raise ClusterError(f"cluster {self.name!r} is not running")
            order = [c for c in COMPONENTS if c in components]
            args = {}
            for component in components:
                pid = state.pids.get(component)
                if pid is None or not _pid_alive(pid, str(self.state_dir)):
                    raise ClusterError(f"cluster {self.name!r} runs no {component}")
                # NUL-terminated argv; the program itself is the component's binary.
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                args[component] = argv[1:-1]
            for component in reversed(order):
                self._stop_process(state.pids[component])
            try:
                yield
            finally:
                pids = {c: pid for c, pid in state.pids.items() if c not in components}
                deadline = time.monotonic() + timeout
                for component in order:
                    pids[component] = self._spawn(Path(state.bin_dir), component, args[component])
                    self._state_file.write_text(
                        replace(state, pids={**state.pids, **pids}).to_json()
                    )
                    check = self._health_check(component, state.ports, state.server)
                    self._wait(component, pids, deadline, check)

    # -- starting ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.state_root.mkdir(parents=True, exist_ok=True)
        with open(self.state_root / f".{self.name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _start(self, *, timeout: float, owner_pid: int | None) -> ClusterState:
        t0 = time.monotonic()
        deadline = t0 + timeout
        bin_dir = self._bin_dir or ensure_binaries()
        ports = Ports.pick()
        server = f"https://127.0.0.1:{ports.apiserver}"
        paths = self._write_pki(server)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        pids: dict[str, int] = {}
        stages: dict[str, float] = {}

        def reached(stage: str) -> None:
            stages[stage] = round(time.monotonic() - t0, 2)

        reached("pki")

        def record() -> ClusterState:
            state = ClusterState(
                name=self.name,
                state_dir=str(self.state_dir),
                bin_dir=str(bin_dir),
                server=server,
                kubeconfig=str(self.kubeconfig),
                ports=ports,
                pids=dict(pids),
                started_at=time.time(),
                startup_seconds=round(time.monotonic() - t0, 2),
                owner_pid=owner_pid,
                stages=dict(stages),
            )
            # Written after every start so that `down` finds all processes even
            # when a later component fails to come up.
            self._state_file.write_text(state.to_json())
            return state

        record()  # from here on, `down` and reap_orphans know this directory
        try:
            pids["etcd"] = self._spawn(bin_dir, "etcd", self._etcd_args(ports))
            record()
            self._wait("etcd", pids, deadline, self._health_check("etcd", ports, server))
            reached("etcd")
            pids["kube-apiserver"] = self._spawn(
                bin_dir, "kube-apiserver", self._apiserver_args(ports, paths)
            )
            record()
            self._wait(
                "kube-apiserver",
                pids,
                deadline,
                self._health_check("kube-apiserver", ports, server),
            )
            reached("kube-apiserver")
            pids["kube-controller-manager"] = self._spawn(
                bin_dir, "kube-controller-manager", self._controller_manager_args(ports, paths)
            )
            pids["kube-scheduler"] = self._spawn(
                bin_dir, "kube-scheduler", self._scheduler_args(ports, paths)
            )
            record()
            for component in ("kube-controller-manager", "kube-scheduler"):
                self._wait(component, pids, deadline, self._health_check(component, ports, server))
                reached(component)
            self._wait(
                "kube-controller-manager",
                pids,
                deadline,
                lambda: self._controllers_running(server),
            )
            reached("controllers")
        except BaseException:
            self._stop(self.load_state())
            raise
        return record()

    def _write_pki(self, server: str) -> dict[str, Path]:
        pki_dir = self.state_dir / "pki"
        made = pki.create_pki(pki_dir, service_ip=KUBERNETES_SERVICE_IP, cluster_name=self.name)
        cluster = f"modelmonitor-{self.name}"
        kubeconfigs = {
            "admin": (self.kubeconfig, pki.Identity("kubernetes-admin", ("system:masters",))),
            "controller-manager": (
                pki_dir / "controller-manager.kubeconfig",
                pki.Identity("system:kube-controller-manager"),
            ),
            "scheduler": (
                pki_dir / "scheduler.kubeconfig",
                pki.Identity("system:kube-scheduler"),
            ),
        }
        paths = {
            "ca_cert": made.ca.cert,
            "ca_key": made.ca.key,
            "serving_cert": made.apiserver.cert,
            "serving_key": made.apiserver.key,
            "sa_key": made.sa_private_key,
            "sa_pub": made.sa_public_key,
            "front_proxy_ca": made.front_proxy_ca.cert,
            "front_proxy_cert": made.front_proxy_client.cert,
            "front_proxy_key": made.front_proxy_client.key,
        }
        for stem, (path, identity) in kubeconfigs.items():
            client = pki.issue_client(made.ca, pki_dir, stem, identity)
            pki.write_kubeconfig(
                path, server=server, ca=made.ca.cert, client=client, cluster=cluster, user=stem
            )
            paths[f"{stem}_kubeconfig"] = path
            paths[f"{stem}_cert"] = client.cert
            paths[f"{stem}_key"] = client.key
        return paths

    def _etcd_args(self, ports: Ports) -> list[str]:
        client = f"http://127.0.0.1:{ports.etcd_client}"
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        return [
            f"--name={self.name}",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self.name}={peer}",
            "--initial-cluster-state=new",
            # Test data is thrown away with the cluster; skipping fsync makes writes fast.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_args(self, ports: Ports, paths: dict[str, Path]) -> list[str]:
        return [
            f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={self.state_dir / 'pki' / 'apiserver-generated'}",
            f"--tls-cert-file={paths['serving_cert']}",
            f"--tls-private-key-file={paths['serving_key']}",
            f"--client-ca-file={paths['ca_cert']}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={paths['sa_pub']}",
            f"--service-account-signing-key-file={paths['sa_key']}",
            "--authorization-mode=Node,RBAC",
            f"--requestheader-client-ca-file={paths['front_proxy_ca']}",
            f"--requestheader-allowed-names={pki.FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={paths['front_proxy_cert']}",
            f"--proxy-client-key-file={paths['front_proxy_key']}",
            # On top of the default set (NamespaceLifecycle, ServiceAccount, PodSecurity,
            # ResourceQuota, the webhook and policy plug-ins, ...), as kubeadm does.
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            # No kubelet listens anywhere; the kubernetes Service's endpoints are not needed.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
        ]

    def _delegated(self, paths: dict[str, Path], who: str, port: int) -> list[str]:
        kubeconfig = paths[f"{who}_kubeconfig"]
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.state_dir / 'pki' / (who + '-generated')}",
            "--leader-elect=false",
            "--v=1",
        ]

    def _controller_manager_args(self, ports: Ports, paths: dict[str, Path]) -> list[str]:
        return [
            *self._delegated(paths, "controller-manager", ports.controller_manager),
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={paths['sa_key']}",
            f"--root-ca-file={paths['ca_cert']}",
            f"--cluster-signing-cert-file={paths['ca_cert']}",
            f"--cluster-signing-key-file={paths['ca_key']}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Its default lies under /usr/libexec, which it would create.
            f"--flex-volume-plugin-dir={self.state_dir / 'flexvolume'}",
        ]

    def _scheduler_args(self, ports: Ports, paths: dict[str, Path]) -> list[str]:
        return self._delegated(paths, "scheduler", ports.scheduler)

    def _spawn(self, bin_dir: Path, component: str, args: list[str]) -> int:
        log = self.log_file(component)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [str(bin_dir / component), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                # Its own session and process group: survives the command that started
                # it, and `down` stops the whole group.
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        return proc.pid

    def _child_alive(self, pid: int) -> bool:
        """Whether a component this process started still runs.

        Our own children are asked directly (``poll``): right after ``Popen`` returns,
        the kernel may not yet have set the new program's command line (vfork resumes
        the parent before exec installs it), so the /proc marker check would take a
        starting process for a dead one.
        """
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        return _pid_alive(pid, str(self.state_dir))

    def _wait(
        self,
        component: str,
        pids: dict[str, int],
        deadline: float,
        check: Callable[[], bool],
    ) -> None:
        delay = 0.05
        while True:
            for name, pid in pids.items():
                if not self._child_alive(pid):
                    log = self.log_file(name)
                    tail = _log_tail(log)
                    error = PortTakenError if "address already in use" in tail else ClusterError
                    raise error(
                        f"{name} exited while starting cluster {self.name!r}; see {log}:\n{tail}"
                    )
            if check():
                return
            if time.monotonic() > deadline:
                log = self.log_file(component)
                raise ClusterError(
                    f"{component} of cluster {self.name!r} not healthy in time; "
                    f"see {log}:\n{_log_tail(log)}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _health_check(self, component: str, ports: Ports, server: str) -> Callable[[], bool]:
        """A check that ``component`` is healthy (for the apiserver: ready)."""
        if component == "etcd":
            return functools.partial(_http_ok, f"http://127.0.0.1:{ports.etcd_client}/health", None)
        if component == "kube-apiserver":
            return functools.partial(self._apiserver_ready, server)
        port = {
            "kube-controller-manager": ports.controller_manager,
            "kube-scheduler": ports.scheduler,
        }[component]
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        return functools.partial(_http_ok, f"https://127.0.0.1:{port}/healthz", insecure)

    def _apiserver_ok(self, server: str, path: str) -> bool:
        """GET ``path`` on the apiserver as the admin; True on 200."""
        pki_dir = self.state_dir / "pki"
        try:
            context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
            context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        except (OSError, ssl.SSLError):
            return False
        return _http_ok(f"{server}{path}", context)

    def _apiserver_ready(self, server: str) -> bool:
        return self._apiserver_ok(server, "/readyz")

    def _controllers_running(self, server: str) -> bool:
        """The controller-manager's controllers reconcile: the serviceaccount controller
        has made the ``default`` ServiceAccount (they start a few seconds after /healthz)."""
        return self._apiserver_ok(server, "/api/v1/namespaces/default/serviceaccounts/default")

    # -- stopping ---------------------------------------------------------------------------
    def _stop(self, state: ClusterState | None, grace: float = 10.0) -> None:
        if state is None:
            return
        # One at a time, in reverse start order: an apiserver whose etcd is already
        # gone takes its whole grace period to exit.
        for component in [c for c in reversed(COMPONENTS) if c in state.pids]:
            self._stop_process(state.pids[component], grace)

    def _stop_process(self, pid: int, grace: float = 10.0) -> None:
        """SIGTERM a component's process group, SIGKILL after ``grace`` seconds."""
        marker = str(self.state_dir)
        if _pid_alive(pid, marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _pid_alive(pid, marker) and time.monotonic() < deadline:
            self._reap(pid)
            time.sleep(0.05)
        if _pid_alive(pid, marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self._reap(pid, block=True)

    def _reap(self, pid: int, *, block: bool = False) -> None:
        proc = self._children.get(pid)
        if proc is None:
            return
        if block:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        else:
            proc.poll()
        if proc.returncode is not None:
            del self._children[pid]


def _http_ok(url: str, context: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def reap_orphans(state_root: Path | None = None, *, prefix: str = "") -> list[str]:
    """Stop clusters whose owner process is gone (left by a killed test session)."""
    root = (state_root or default_state_root()).resolve()
    stopped: list[str] = []
    if not root.is_dir():
        return stopped
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or not entry.name.startswith(prefix):
            continue
        plane = ControlPlane(entry.name, state_root=root)
        state = plane.load_state() or plane.load_state(stopped=True)
        if state is None or state.owner_pid is None:
            continue
        if not Path(f"/proc/{state.owner_pid}").exists():
            plane.down()
            stopped.append(entry.name)
    return stopped


def eprint(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)
