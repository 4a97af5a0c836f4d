"""The runtime state of a pod's containers: their processes, restarts (with
:class:`Backoff`), probes and reported status, and the pod phase that follows from them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.api import Obj, now_timestamp
from tests.cluster.images import Launch
from tests.cluster.probes import Prober
from tests.cluster.termination import read_message

# Set in every container process; lets a later agent find processes an earlier,
# killed agent left behind (see reap_orphan_processes).
AGENT_PID_ENV = "MODELMONITOR_NODE_AGENT_PID"
TERMINAL_PHASES = ("Succeeded", "Failed")


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


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class Container:
    """The runtime state of one container of a pod: its process, restarts and probes."""

    def __init__(self, spec: Mapping[str, Any], log_path: Path, *, init: bool = False) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.image: str = spec.get("image", "")
        self.init = init
        self.log_path = log_path
        # Bound at its terminationMessagePath when the pod's processes are isolated.
        self.message_file = log_path.with_suffix(".termination-log")
        self.message_bound = False
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

    def _prober(self, key: str, *, initial: bool) -> Prober | None:
        spec = None if self.init else self.spec.get(key)
        return Prober(spec, key, initial=initial) if spec else None

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
        self.message_file.write_bytes(b"")  # a fresh message per start, as a kubelet's
        self.message_file.chmod(0o666)  # any container user may write it
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
        self.started_at = now_timestamp()
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
        signal_group(self.proc.pid, signal.SIGKILL)
        exit_code = 128 - code if code < 0 else code
        state = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": self.started_at,
            "finishedAt": now_timestamp(),
            "containerID": self.container_id,
        }
        if code < 0:
            state["signal"] = -code
        message = read_message(
            self.spec,
            self.message_file if self.message_bound else None,
            exit_code,
            self.output(),
        )
        if message:
            state["message"] = message
        self.running_state = None
        self.ran_seconds = time.monotonic() - self._started_mono
        self.terminated = state
        return exit_code

    def stop(self, grace: float) -> None:
        """SIGTERM its process group, SIGKILL after ``grace`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        signal_group(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        signal_group(self.proc.pid, signal.SIGKILL)
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


def pod_phase(restart_policy: str, init: Sequence[Container], main: Sequence[Container]) -> str:
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
