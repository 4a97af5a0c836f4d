"""The thread that runs one pod's containers and is the only writer of its status."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from tests.cluster.api import ApiError, Obj, now_timestamp
from tests.cluster.containers import TERMINAL_PHASES, Container, pod_phase, signal_group
from tests.cluster.environment import ConfigError, RefReader, container_env, expand_vars
from tests.cluster.images import ContainerContext
from tests.cluster.pod_dns import etc_hosts, isolated_argv, pod_hostname, resolv_conf
from tests.cluster.probes import run_probe
from tests.cluster.termination import message_path
from tests.cluster.volumes import container_mounts, materialize_volumes, rewrite_mount_paths

if TYPE_CHECKING:
    from tests.cluster.node import NodeAgent

log = logging.getLogger(__name__)

# The TokenRequest lifetime a kubelet asks for; the API server extends pod-bound
# tokens of exactly this lifetime to a year, so the per-pod kubeconfig never expires.
TOKEN_SECONDS = 3607
TICK_SECONDS = 0.2
# The pause after a step of the worker's loop failed.
RETRY_SECONDS = 1.0


def _pod_path(namespace: str, name: str, sub: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}{sub}"


class PodWorker:
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
            Container(c, self.dir / f"{c['name']}.log", init=True)
            for c in spec.get("initContainers") or []
        ]
        self.main = [Container(c, self.dir / f"{c['name']}.log") for c in spec["containers"]]
        self.ip = ""
        self.gone = False
        self._wake = threading.Event()
        # Set up once, before the first container starts (retried each second on error).
        self._credentials: dict[str, str] | None = None
        self._volumes: dict[str, Path] | None = None
        # The pod's resolv.conf and hosts, bound over /etc's for its processes (None: the host's).
        self._etc: tuple[Path, Path] | None = None
        self._token_value = ""
        self._config_error = ""
        self._retry_setup = 0.0
        self._conditions: dict[str, Obj] = {
            c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []
        }
        self._start_time = (pod.get("status") or {}).get("startTime") or now_timestamp()
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
            pause = TICK_SECONDS
            try:
                self._step(time.monotonic())
                phase, written = self._write_status()
            except Exception:
                # The pod's processes outlive a failed step; the next one tries again.
                log.exception("pod %s/%s: worker step failed", self.namespace, self.name)
                pause = RETRY_SECONDS
            else:
                if phase in TERMINAL_PHASES and written:
                    self._stop_containers(0)
                    return
            self._wake.wait(pause)
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

    def _restarts(self, container: Container, code: int) -> bool:
        if self.restart_policy == "Never":
            return False
        if container.init or self.restart_policy == "OnFailure":
            return code != 0
        return True

    def _drive(self, container: Container, now: float) -> None:
        if container.running:
            self._probe(container, now)
        elif not container.done and container.running_state is None and now >= container.next_start:
            self._start(container, now)

    def _start(self, container: Container, now: float) -> None:
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
            launch = runner(ctx)
            if self._etc is not None:
                argv = isolated_argv(
                    launch.argv,
                    *self._etc,
                    hostname=pod_hostname(self.pod),
                    path=env.get("PATH"),
                    cwd=launch.cwd,
                    binds=[(container.message_file, message_path(container.spec))],
                )
                launch = replace(launch, argv=argv)
            container.message_bound = self._etc is not None
            container.start(launch, env, os.getpid())
        except Exception as exc:
            return wait("RunContainerError", f"{type(exc).__name__}: {exc}")
        self.agent.event(
            self.pod, "Normal", "Started", f"Started container {container.name}", container
        )

    def _probe(self, container: Container, now: float) -> None:
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
            signal_group(container.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
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
                RefReader(self.agent.api, self.namespace),
                self._token,
                pod_ip=self.ip,
                host_ip=self.agent.host_ip,
            )
            self._etc = self._write_etc()
        except (ConfigError, ApiError, KeyError, OSError) as exc:
            self._config_error = str(exc)
            self._retry_setup = now + 1.0
            return False
        return True

    def _write_etc(self) -> tuple[Path, Path] | None:
        """The pod's resolv.conf and hosts files, when the node can show them to it."""
        nameserver = self.agent.pod_nameserver
        resolv = resolv_conf(self.pod, nameserver) if nameserver else None
        if resolv is None:
            return None
        etc = self.dir / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "resolv.conf").write_text(resolv)
        (etc / "hosts").write_text(etc_hosts(self.pod, self.ip))
        return etc / "resolv.conf", etc / "hosts"

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
            since = old.get("lastTransitionTime") or now_timestamp()
        else:
            since = now_timestamp()
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
