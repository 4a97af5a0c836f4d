"""What a local control plane is made of: its ports, its saved state (``cluster.json``), its
components' status, and the errors the harness raises.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Start order; stopped in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


STATE_FILE = "cluster.json"

REPO_ROOT = Path(__file__).resolve().parents[2]


class ClusterError(RuntimeError):
    """The control plane could not be built, started or reached."""


class PortTakenError(ClusterError):
    """A port picked as free was taken by another process before a component bound it."""


def default_state_root() -> Path:
    """Where cluster state directories live: $MODELMONITOR_CLUSTER_DIR or <repo>/.state/cluster."""
    env = os.environ.get("MODELMONITOR_CLUSTER_DIR")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".state" / "cluster"


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    @classmethod
    def pick(cls) -> Ports:
        """Ask the kernel for five distinct free loopback ports."""
        with contextlib.ExitStack() as stack:
            numbers = []
            for _ in range(5):
                sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.bind(("127.0.0.1", 0))
                numbers.append(sock.getsockname()[1])
        return cls(*numbers)


@dataclass(frozen=True)
class ClusterState:
    """What ``cluster.json`` records about a started cluster."""

    name: str
    state_dir: str
    bin_dir: str
    server: str
    kubeconfig: str
    ports: Ports
    pids: dict[str, int]
    started_at: float
    startup_seconds: float
    owner_pid: int | None = None
    # Seconds from the start until each component was healthy (for timing reports).
    stages: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        raw = json.loads(text)
        raw["ports"] = Ports(**raw["ports"])
        return cls(**raw)


@dataclass(frozen=True)
class Status:
    """The observed state of a named cluster."""

    name: str
    state_dir: Path
    running: dict[str, bool] = field(default_factory=dict)
    ready: bool = False
    state: ClusterState | None = None

    @property
    def all_running(self) -> bool:
        return all(self.running.get(c, False) for c in COMPONENTS)

    @property
    def up(self) -> bool:
        return self.ready and self.all_running

    def describe(self) -> str:
        if self.state is None:
            return f"cluster {self.name!r}: down (no state in {self.state_dir})"
        procs = ", ".join(
            f"{c}={'running' if self.running.get(c) else 'stopped'}" for c in COMPONENTS
        )
        if self.up:
            verdict = "up"
        elif any(self.running.values()):
            verdict = "degraded (run `down`, then `up`)"
        else:
            verdict = "down (stopped; `up` starts it afresh)"
        return (
            f"cluster {self.name!r}: {verdict}\n"
            f"  server:     {self.state.server}\n"
            f"  kubeconfig: {self.state.kubeconfig}\n"
            f"  logs:       {self.state_dir / 'logs'}\n"
            f"  processes:  {procs}\n"
            f"  apiserver /readyz: {'ok' if self.ready else 'not ready'}"
        )
